{%- from 'base/map.jinja' import inventory with context %}
# /etc/hosts: every host of the inventory and every VIP, by FQDN and short name.
base-hosts-localhost:
  host.present:
    - name: localhost
    - ip: [127.0.0.1, '::1']
{%- for name, host in inventory.hosts.items() %}
base-hosts-entry-{{ name }}:
  host.only:
    - name: {{ host.ip }}
    - hostnames: {{ [host.fqdn, name] | unique | list | json }}
{%- endfor %}
{%- for vname, vip in inventory.vips.items() %}
base-hosts-vip-{{ vname }}:
  host.only:
    - name: {{ vip.ip }}
    - hostnames: {{ [vip.hostname ~ '.' ~ inventory.domain, vip.hostname] | json }}
{%- endfor %}
