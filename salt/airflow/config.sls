{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
include:
  - airflow.install
{%- if airflow.pgbouncer.enabled %}
  # the env file's DB URLs point at this host's PgBouncer (pillar airflow:pgbouncer)
  - airflow.pgbouncer
{%- endif %}
{%- if airflow.tls.enabled %}
  # the cluster CA: the DB connections, the broker (amqps) and the API behind the VIP (https) verify against it
  - pki
{%- endif %}

# The DAG folder belongs to storage.dags (root-owned, read-only to Airflow).
airflow-dirs:
  file.directory:
    - names:
      - {{ airflow.log_dir }}
    - user: {{ airflow.user }}
    - group: {{ airflow.user }}
    - makedirs: True
    - require:
      - user: airflow-user

airflow-cfg:
  file.managed:
    - name: {{ airflow.home }}/airflow.cfg
    # a site's own template wins (common/tofs.jinja)
    - source: {{ files_switch('airflow', ['airflow.cfg.jinja'], 'airflow-cfg') }}
    - template: jinja
    - user: root
    - group: {{ airflow.user }}
    - mode: '0644'
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user
{%- if airflow.tls.enabled %}
      - file: pki-ca-cert
{%- endif %}

airflow-celery-config:
  file.managed:
    - name: {{ airflow.home }}/config/airflow_ha_celery.py
    - source: salt://airflow/files/airflow_ha_celery.py.jinja
    - template: jinja
    - makedirs: True
    - user: root
    - group: {{ airflow.user }}
    - mode: '0644'
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user

{%- if airflow.scheduler_host or airflow.webserver_host %}

# The admin user's password from pillar, never shown, owned by airflow. FAB
# (the default; the 2.x line always): airflow.migrate makes the break-glass
# admin, a FAB user in the metadata DB, from it on the first scheduler.
# Airflow 3's simple auth manager (pillar airflow:auth:manager simple) reads
# (and would otherwise generate and print) it on the api-servers. Same
# format: {user: password}. Only these hosts hold the password
# (pillar/role_secrets.yaml).
{%-   set passwords = {airflow.admin_user: salt['pillar.get']('secrets:airflow:admin_password')} %}
airflow-admin-password:
  file.managed:
    - name: {{ airflow.admin_passwords_file }}
    - contents: {{ passwords | json | json }}
    - user: {{ airflow.user }}
    - group: {{ airflow.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - user: airflow-user
{%- else %}

# No Airflow component of this host reads it: no copy here (an earlier
# version wrote one on every Airflow host).
airflow-admin-password-absent:
  file.absent:
    - name: {{ airflow.admin_passwords_file }}
{%- endif %}
{%- if airflow.auth.warning %}

airflow-auth-simple-warning:
  test.show_notification:
    - text: {{ airflow.auth.warning | json }}
{%- endif %}
{%- if airflow.fab %}

# Flask settings of the FAB auth manager ([fab] config_file; 2.x: [webserver]
# config_file): LDAP logins with groups mapped to roles (pillar airflow:auth)
# on both lines, the session cookies; managed so Airflow does not write its own.
airflow-webserver-config:
  file.managed:
    - name: {{ airflow.home }}/webserver_config.py
    - source: {{ files_switch('airflow', ['webserver_config.py.jinja'], 'airflow-webserver-config') }}
    - template: jinja
    - user: root
    - group: {{ airflow.user }}
    - mode: '0644'
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user
{%-   if airflow.webserver_host %}
      - file: airflow-ldap-bind-password

# The directory search account's password (webserver_config.py reads it), on
# the api-server (2.x: webserver) hosts only: airflow only, never on a
# command line or in state output.
airflow-ldap-bind-password:
  file.managed:
    - name: {{ airflow.ldap_bind_password_file }}
    - contents_pillar: secrets:ldap:bind_password
    - user: {{ airflow.user }}
    - group: {{ airflow.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - user: airflow-user
{%-   endif %}
{%- endif %}

{%- if airflow.card_target and airflow.card_pool_host %}

# The workers' key to the card target's service account: the card_processing
# DAG's SSH tasks run on the card pool's workers (inventory `queues` holding
# the card queue), the only hosts holding it.
airflow-card-target-key:
  file.managed:
    - name: {{ airflow.card_target.key_file }}
    - contents_pillar: secrets:card:ssh_private_key
    - makedirs: True
    - dir_mode: '0700'
    - user: {{ airflow.user }}
    - group: {{ airflow.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - user: airflow-user
{%- elif airflow.card_target %}

# Not a worker of the card pool: no copy of the workers' key (an earlier
# version wrote one on every Airflow host, then on every worker).
airflow-card-target-key-absent:
  file.absent:
    - name: {{ airflow.card_target.key_file }}
{%- endif %}

# Secrets (DB/broker URLs, keys) only here: 0640, never on a command line.
airflow-env:
  file.managed:
    - name: {{ airflow.env_file }}
    - source: salt://airflow/files/airflow.env.jinja
    - template: jinja
    - user: root
    - group: {{ airflow.user }}
    - mode: '0640'
    - show_changes: False
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user
{%- if airflow.db_tls %}
      # its DB URLs name the CA file (sslrootcert)
      - file: pki-ca-cert
{%- endif %}
