{#- The autoscaling's master side (issue 20, docs/operations.md#autoscaling),
    on the CA host (the Salt master's host): salt-api's rest_cherrypy with
    the host's certificate receives Alertmanager's webhook and fires
    salt/netapi/hook/airflow-ha/autoscale on the master's event bus; the
    master config's reactor (README) runs salt/reactor/autoscale.sls, which
    compares the request's bearer token with the token file written here.
    Nothing without a standby host in the inventory. -#}
{%- from 'autoscale/map.jinja' import autoscale with context %}
{%- from 'pki/map.jinja' import pki with context %}
{%- if autoscale.standby and grains['id'] == autoscale.master_host %}
{%-   set api = autoscale.salt_api %}
{%-   set python = grains['pythonexecutable'] %}
{%-   set installed = 'pkg' if api.source == 'package' else 'file' %}
{%-   if autoscale.tls %}
include:
  - pki
{%-   endif %}

autoscale-webhook-token:
  # the reactor (the master, root) reads it; nobody else
  file.managed:
    - name: {{ autoscale.token_file | json }}
    - contents: {{ salt['pillar.get']('secrets:autoscale:webhook_token') | json }}
    - user: root
    - group: root
    - mode: '0600'
    - makedirs: True
    - dir_mode: '0700'
    - show_changes: False
{%-   if autoscale.tls %}

autoscale-salt-api-key:
  # salt-api's own copy of the host key (it runs as root)
  file.managed:
    - name: {{ autoscale.ssl_key | json }}
    - source: {{ pki.host_key | json }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - x509: pki-host-key
{%-   endif %}
{%-   if api.source == 'package' %}

autoscale-salt-api-installed:
  pkg.installed:
    - name: {{ api.package | json }}
{%-   else %}

autoscale-salt-api-installed:
  # salt-api of the Salt the minion runs from (its venv's script through its Python)
  file.managed:
    - name: {{ (api.unit_dir ~ '/' ~ api.service ~ '.service') | json }}
    - mode: '0644'
    - contents: |
        # Managed by Salt (autoscale): salt-api of the Salt in {{ python.rsplit('/', 2)[0] }}
        [Unit]
        Description=salt-api (Airflow HA autoscaling webhook)
        After=network-online.target salt-master.service
        [Service]
        ExecStart={{ python }} {{ python.rsplit('/', 1)[0] }}/salt-api
        UMask=0077
        Restart=on-failure
        [Install]
        WantedBy=multi-user.target
{%-   endif %}

autoscale-salt-api-config:
  # read by salt-api (the master ignores rest_cherrypy). No eauth: the
  # webhook alone is open (webhook_disable_auth: Alertmanager cannot log in
  # for an expiring Salt token); the reactor refuses a request without the
  # bearer token, and the firewall admits the monitoring hosts only
  file.managed:
    - name: {{ api.config | json }}
    - mode: '0600'
    - contents: |
        # Managed by Salt (autoscale): salt-api for Alertmanager's autoscaling webhook
        rest_cherrypy:
          host: {{ salt['ha_inventory.host']().ip | json }}
          port: {{ api.port | int }}
          webhook_url: /hook
          webhook_disable_auth: true
{%-   if autoscale.tls %}
          ssl_crt: {{ pki.host_cert | json }}
          ssl_key: {{ autoscale.ssl_key | json }}
{%-   else %}
          disable_ssl: true
{%-   endif %}
    - require:
      - {{ installed }}: autoscale-salt-api-installed

autoscale-salt-api-running:
  service.running:
    - name: {{ api.service | json }}
    - enable: True
    - watch:
      - {{ installed }}: autoscale-salt-api-installed
      - file: autoscale-salt-api-config
{%-   if autoscale.tls %}
      - file: autoscale-salt-api-key
      - x509: pki-host-cert
{%-   endif %}
{%- endif %}
