{%- from 'pki/map.jinja' import pki with context %}
# The cluster CA and this host's certificate (public, 0644). Each service's
# state writes its own copy of the host key (owner the service user, 0600,
# from pillar tls:key) once its package has created that user.
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

pki-host-cert:
  file.managed:
    - name: {{ pki.host_cert | json }}
    - contents_pillar: tls:cert
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - file: pki-ca-cert
{%- endif %}
