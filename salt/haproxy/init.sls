{%- from 'haproxy/map.jinja' import haproxy with context %}
{%- from 'pki/map.jinja' import pki with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
# The load-balancer tier: HAProxy in front of the Patroni leader (5000), the
# replicas (6000), the Airflow UI/API (80) and Flower (5555), with its stats
# page and Prometheus exporter (7000); keepalived moves the main VIP between
# the hosts of this role.
include:
  - keepalived
{%- if haproxy.tls.enabled %}
  # the cluster CA the health checks of the Patroni REST API verify against
  - pki
{%- endif %}

haproxy-package:
  pkg.installed:
    - name: {{ haproxy.package | json }}

haproxy-config:
  file.managed:
    - name: {{ haproxy.config | json }}
    # a site's own template wins (common/tofs.jinja)
    - source: {{ files_switch('haproxy', ['haproxy.cfg.jinja'], 'haproxy-config') }}
    - template: jinja
    - user: root
    - group: {{ haproxy.group | json }}
    - mode: '0640'
    # holds the stats password
    - show_changes: False
    - context:
        haproxy: {{ haproxy | json }}
    # the new file is checked before it replaces the live one
    - check_cmd: haproxy -c -f
    - require:
      - pkg: haproxy-package
{%- if haproxy.tls.enabled %}
      # ca-file of the checks: `haproxy -c` and the reload read it
      - file: pki-ca-cert
{%- endif %}

{%- for boolean in haproxy.selinux_booleans %}

haproxy-selinux-{{ boolean }}:
  selinux.boolean:
    - name: {{ boolean | json }}
    - value: True
    - persist: True
    - require_in:
      - service: haproxy-running
{%- endfor %}

haproxy-running:
  service.running:
    - name: {{ haproxy.service | json }}
    - enable: True
    # master-worker reload: new workers take the listening sockets, old ones
    # finish their sessions (at most hard_stop_after); no connection refused
    - reload: True
    - watch:
      - file: haproxy-config
{%- if haproxy.tls.enabled %}
      # a new CA: reloaded workers read it
      - file: pki-ca-cert
{%- endif %}
    - require:
      - pkg: haproxy-package
{%- if haproxy.tls.enabled %}

# TLS of the UI/API (443; 80 only redirects) and of Flower (5555): this
# host's certificate, which names the VIP, and its key in one PEM
haproxy-tls-pem:
  # certificate and key in one file, as `bind ... ssl crt` wants them; read
  # by HAProxy as root before it drops privileges. The template reads the
  # host's key file when the state runs: never through the state's arguments.
  file.managed:
    - name: {{ haproxy.tls.pem | json }}
    - source: salt://haproxy/files/tls.pem.jinja
    - template: jinja
    - context:
        pki: {{ {'host_cert': pki.host_cert, 'host_key': pki.host_key} | json }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - x509: pki-host-key
      - x509: pki-host-cert
    - require_in:
      - file: haproxy-config
    - watch_in:
      - service: haproxy-running
{%- endif %}
