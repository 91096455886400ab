{%- from 'etcd/map.jinja' import etcd with context %}
{%- from 'pki/map.jinja' import pki with context %}
# One member of the 3-member etcd cluster Patroni uses as its DCS.
{%- if etcd.tls.enabled %}
include:
  - pki
{%- endif %}

etcd-packages:
  pkg.installed:
    - pkgs: {{ etcd.packages | json }}

etcd-data-dir:
  file.directory:
    - name: {{ etcd.data_dir }}
    - user: {{ etcd.user }}
    - group: {{ etcd.user }}
    - mode: '0700'
    - makedirs: True
    - require:
      - pkg: etcd-packages

etcd-config:
  file.managed:
    - name: {{ etcd.env_file }}
    - source: salt://etcd/files/etcd.env.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: True
    - context:
        etcd: {{ etcd | json }}
    - require:
      - pkg: etcd-packages

{%- if etcd.tls.enabled %}

etcd-tls-key:
  # etcd's own copy of the host key; etcd re-reads its certificate files on
  # every TLS handshake, so a renewal needs no restart
  file.managed:
    - name: {{ etcd.tls.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ etcd.user }}
    - group: {{ etcd.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: etcd-packages
      - x509: pki-host-key
{%- endif %}

etcd-running:
  service.running:
    - name: {{ etcd.service }}
    - enable: True
    - watch:
      - file: etcd-config
    - require:
      - file: etcd-data-dir
{%- if etcd.tls.enabled %}
      - file: etcd-tls-key
      - x509: pki-host-cert
{%- endif %}

etcd-healthy:
  # /health is true only while the member sees a leader, i.e. the cluster has quorum
  http.wait_for_successful_query:
    - name: {{ etcd.local_url }}/health
    - match: '"health":"true"'
{%- if etcd.tls.enabled %}
    # with client-cert-auth even /health wants a client certificate
    - ca_bundle: {{ etcd.tls.ca_file | json }}
    - cert: {{ [etcd.tls.cert_file, etcd.tls.key_file] | json }}
{%- endif %}
    - wait_for: {{ etcd.health_timeout }}
    - request_interval: 2
    - require:
      - service: etcd-running
