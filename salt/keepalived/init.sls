{%- from 'keepalived/map.jinja' import keepalived with context %}
# keepalived: the VIPs of the inventory whose role this host has (the main VIP
# on the haproxy hosts, the NFS VIP on the nfs hosts), one VRRP instance each.
# Included by the states of those roles.
keepalived-package:
  pkg.installed:
    - name: {{ keepalived.package | json }}

{%- for name, script in keepalived.scripts | dictsort %}
{%-   if script.get('file') %}

keepalived-track-script-{{ name }}:
  file.managed:
    - name: {{ script.file.name | json }}
    - source: {{ script.file.source | json }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
    - require_in:
      - file: keepalived-config
{%-   endif %}
{%- endfor %}

keepalived-config:
  file.managed:
    - name: {{ keepalived.config | json }}
    - source: salt://keepalived/files/keepalived.conf.jinja
    - template: jinja
    - makedirs: True
    - user: root
    - group: root
    - mode: '0600'
    # holds the VRRP password
    - show_changes: False
    - context:
        keepalived: {{ keepalived | json }}
    # config test of the new file (syntax, interfaces, track scripts) before it replaces the live one
    - check_cmd: keepalived -t -f
    - require:
      - pkg: keepalived-package

keepalived-running:
  service.running:
    - name: {{ keepalived.service | json }}
    - enable: True
    # SIGHUP: keepalived re-reads its config; an unchanged instance keeps its state and the VIP
    - reload: True
    - watch:
      - file: keepalived-config
