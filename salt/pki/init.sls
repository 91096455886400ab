{%- from 'pki/map.jinja' import pki with context %}
# The cluster CA's certificate (public, from pillar), this host's own key
# (made here, root-only, never leaves the host) and its certificate, signed
# by the CA host under this host's signing policy (tools/gen_tls.py): the
# policy, not the request, decides the names. Each service's state copies the
# key for its own user once its package has created that user.
{%- if pki.enabled %}
pki-dir:
  file.directory:
    - name: {{ pki.dir | json }}
    - user: root
    - group: {{ pki.dir_group | json }}
    - mode: '0755'
    - makedirs: True

pki-ca-cert:
  file.managed:
    - name: {{ pki.ca_cert | json }}
    - contents_pillar: tls:ca_cert
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - file: pki-dir

pki-host-key:
  x509.private_key_managed:
    - name: {{ pki.host_key | json }}
    # EC P-256 as before: PostgreSQL, etcd (Go), Erlang, HAProxy, rsyslog and Python read it
    - algo: ec
    - keysize: 256
    # PKCS#8 PEM, unencrypted: what every service here reads
    - encoding: pem
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: pki-dir

pki-host-cert:
  x509.certificate_managed:
    - name: {{ pki.host_cert | json }}
    - private_key: {{ pki.host_key | json }}
    - signing_policy: {{ pki.signing_policy | json }}
{%- if pki.ca_server %}
    - ca_server: {{ pki.ca_server | json }}
{%- endif %}
    - days_remaining: {{ pki.renew_days | int }}
    - days_valid: {{ pki.days_valid | int }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - x509: pki-host-key
      - file: pki-ca-cert
{%- endif %}
