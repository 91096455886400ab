{%- from 'rabbitmq/map.jinja' import rabbitmq, this_host with context %}
{%- from 'pki/map.jinja' import pki with context %}
# RabbitMQ cluster, one node per host of the `rabbitmq` role: the Erlang
# cookie from pillar, peers from the inventory (classic config discovery),
# then on the seed node the cluster-wide objects: Airflow vhost (quorum by
# default), users, policy, no guest. With TLS (pillar tls:enabled) AMQP and
# the management API listen only with TLS, on this host's certificate (pki).
{%- if rabbitmq.tls.enabled %}
include:
  - pki
{%- endif %}
{%- for name, repo in rabbitmq.get('repos', {}).items() %}
rabbitmq-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: rabbitmq-packages
{%- endfor %}

rabbitmq-packages:
  pkg.installed:
    - pkgs: {{ rabbitmq.packages | json }}

rabbitmq-erlang-cookie:
  file.managed:
    - name: {{ rabbitmq.data_dir }}/.erlang.cookie
    - contents_pillar: secrets:rabbitmq:erlang_cookie
    - user: {{ rabbitmq.user }}
    - group: {{ rabbitmq.user }}
    - mode: '0400'
    - show_changes: False
    - require:
      - pkg: rabbitmq-packages

rabbitmq-env-config:
  file.managed:
    - name: {{ rabbitmq.config_dir }}/rabbitmq-env.conf
    - source: salt://rabbitmq/files/rabbitmq-env.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        rabbitmq: {{ rabbitmq | json }}
    - require:
      - pkg: rabbitmq-packages

rabbitmq-config:
  file.managed:
    - name: {{ rabbitmq.config_dir }}/rabbitmq.conf
    - source: salt://rabbitmq/files/rabbitmq.conf.jinja
    - template: jinja
    - user: root
    - group: {{ rabbitmq.user }}
    - mode: '0640'
    - context:
        rabbitmq: {{ rabbitmq | json }}
    - require:
      - pkg: rabbitmq-packages

rabbitmq-enabled-plugins:
  file.managed:
    - name: {{ rabbitmq.config_dir }}/enabled_plugins
    - contents: {{ ('[' ~ rabbitmq.plugins | join(',') ~ '].') | json }}
    - mode: '0644'
    - require:
      - pkg: rabbitmq-packages

{%- if rabbitmq.tls.enabled %}

rabbitmq-tls-key:
  # its own copy of the host key, readable by the rabbitmq user only
  file.managed:
    - name: {{ rabbitmq.tls.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ rabbitmq.user }}
    - group: {{ rabbitmq.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: rabbitmq-packages
      - x509: pki-host-key
{%- endif %}

rabbitmq-running:
  # RabbitMQ has no config reload: a changed cookie, name or config restarts it
  service.running:
    - name: {{ rabbitmq.service }}
    - enable: True
    - watch:
      - file: rabbitmq-erlang-cookie
      - file: rabbitmq-env-config
      - file: rabbitmq-config
      - file: rabbitmq-enabled-plugins
{%- if rabbitmq.tls.enabled %}
    - require:
      - file: rabbitmq-tls-key
      - x509: pki-host-cert

rabbitmq-tls-reload:
  # a renewed certificate or key: new TLS connections read the files again
  # (the PEM cache is cleared), open ones and the node keep running; no
  # restart of every node of the cluster at once
  cmd.run:
    - name: rabbitmqctl eval 'ssl:clear_pem_cache().'
    - onchanges:
      - file: rabbitmq-tls-key
      - x509: pki-host-cert
      - file: pki-ca-cert
    - require:
      - service: rabbitmq-running
{%- endif %}

{%- if rabbitmq.partition_heal.enabled %}

rabbitmq-partition-heal-script:
  file.managed:
    - name: {{ rabbitmq.partition_heal.script | json }}
    - source: salt://rabbitmq/files/rabbitmq-partition-heal.py
    - mode: '0755'

{%-   for unit in ('service', 'timer') %}

rabbitmq-partition-heal-{{ unit }}-unit:
  file.managed:
    - name: /etc/systemd/system/rabbitmq-partition-heal.{{ unit }}
    - source: salt://rabbitmq/files/rabbitmq-partition-heal.{{ unit }}.jinja
    - template: jinja
    - mode: '0644'
    - context:
        rabbitmq: {{ rabbitmq | json }}
{%-   endfor %}

rabbitmq-partition-heal-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: rabbitmq-partition-heal-service-unit
      - file: rabbitmq-partition-heal-timer-unit

rabbitmq-partition-heal-timer:
  service.running:
    - name: rabbitmq-partition-heal.timer
    - enable: True
    - watch:
      - file: rabbitmq-partition-heal-timer-unit
    - require:
      - file: rabbitmq-partition-heal-script
      - cmd: rabbitmq-partition-heal-units-loaded
      - service: rabbitmq-running
{%- endif %}

{%- if rabbitmq.node != rabbitmq.seed %}

rabbitmq-joined:
  rabbitmq_ha.joined:
    - name: {{ rabbitmq.seed | json }}
    - timeout: {{ rabbitmq.cluster_wait_timeout }}
    - require:
      - service: rabbitmq-running
    - require_in:
      - rabbitmq_ha: rabbitmq-cluster-healthy
{%- endif %}

rabbitmq-cluster-healthy:
  rabbitmq_ha.cluster_healthy:
    - nodes: {{ rabbitmq.nodes | json }}
    - timeout: {{ rabbitmq.cluster_wait_timeout }}
    - require:
      - service: rabbitmq-running

{%- if rabbitmq.node == rabbitmq.seed %}
{#- cluster-wide objects: created once, from the seed node #}

rabbitmq-airflow-vhost:
  rabbitmq_ha.vhost_present:
    - name: {{ rabbitmq.airflow.vhost | json }}
    - default_queue_type: {{ rabbitmq.default_queue_type | json }}
    - require:
      - rabbitmq_ha: rabbitmq-cluster-healthy

rabbitmq-airflow-policy:
  rabbitmq_ha.policy_present:
    - name: {{ rabbitmq.policy.name | json }}
    - vhost: {{ rabbitmq.airflow.vhost | json }}
    - pattern: {{ rabbitmq.policy.pattern | json }}
    - definition: {{ rabbitmq.policy.definition | json }}
    - priority: {{ rabbitmq.policy.priority }}
    - apply_to: queues
    - require:
      - rabbitmq_ha: rabbitmq-airflow-vhost

rabbitmq-airflow-user:
  rabbitmq_ha.user_present:
    - name: {{ rabbitmq.airflow.user | json }}
    - password: {{ salt['pillar.get']('secrets:rabbitmq:airflow_password') | json }}
    - permissions:
        {{ rabbitmq.airflow.vhost | json }}: ['.*', '.*', '.*']
    - require:
      - rabbitmq_ha: rabbitmq-airflow-vhost

rabbitmq-admin-user:
  rabbitmq_ha.user_present:
    - name: {{ rabbitmq.admin_user | json }}
    - password: {{ salt['pillar.get']('secrets:rabbitmq:admin_password') | json }}
    - tags: [administrator]
    - permissions:
        {{ rabbitmq.airflow.vhost | json }}: ['.*', '.*', '.*']
        '/': ['.*', '.*', '.*']
    - require:
      - rabbitmq_ha: rabbitmq-airflow-vhost

rabbitmq-guest-absent:
  rabbitmq_ha.user_absent:
    - name: guest
    - require:
      - rabbitmq_ha: rabbitmq-admin-user
{%- endif %}
