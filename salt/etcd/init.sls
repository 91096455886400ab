{%- from 'etcd/map.jinja' import etcd with context %}
# One member of the 3-member etcd cluster Patroni uses as its DCS.
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

etcd-running:
  service.running:
    - name: {{ etcd.service }}
    - enable: True
    - watch:
      - file: etcd-config
    - require:
      - file: etcd-data-dir

etcd-healthy:
  # /health is true only while the member sees a leader, i.e. the cluster has quorum
  http.wait_for_successful_query:
    - name: http://127.0.0.1:{{ etcd.client_port }}/health
    - match: '"health":"true"'
    - wait_for: {{ etcd.health_timeout }}
    - request_interval: 2
    - require:
      - service: etcd-running
