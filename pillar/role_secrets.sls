{#- The secrets of THIS minion's roles, and nothing else (least privilege,
    issue 17: docs/secrets.md). The one secrets file (airflow_ha_secrets.sls
    in a root-only pillar root, written by tools/gen_secrets.py) is read here
    and never given whole. Each minion gets the keys that role_secrets.yaml
    names for its roles in the inventory, the file's `tls` part unchanged
    (the CA certificate and the switch, which every host reads), and the map
    itself (only names: the render's checks ask for exactly these keys; the
    selection is ha_inventory.host_secrets, and a test keeps the two equal).
    The minion is opts.id, the id the master authenticated (pillar renders on
    the master), never a grain, which the minion reports itself. No other
    key of the file reaches any host. #}
{%- set topology = opts.get('airflow_ha_topology', 'full') %}
{%- import_yaml 'inventory/' ~ topology ~ '.yaml' as inventory %}
{%- import_yaml 'role_secrets.yaml' as role_secrets %}
{#- read as pillar reads an SLS: Jinja, then YAML, or the renderers of the
    file's own `#!` line (e.g. `#!yaml|gpg`: Salt's GPG renderer decrypts the
    values; its temporary copy holds the ciphertext only). A missing file
    gives no secret: the render's checks then name each key the host needs. #}
{%- set text %}{% include 'airflow_ha_secrets.sls' ignore missing %}{% endset %}
{%- if text.startswith('#!') %}
{%-   set shared = salt['slsutil.renderer'](string=text, default_renderer='yaml') %}
{%- else %}
{%-   set shared = text | load_yaml %}
{%- endif %}
{%- set shared = shared if shared is mapping else {} %}
{%- set hosts = inventory.get('hosts') or {} %}
{%- set host_roles = (hosts.get(opts.id) or {}).get('roles') or [] %}
{%- set inventory_roles = [] %}
{%- for entry in hosts.values() %}
{%-   do inventory_roles.extend((entry or {}).get('roles') or []) %}
{%- endfor %}
{%- set given = {} %}
{%- for need in role_secrets.needs %}
{%-   if host_roles | select('in', need.roles) | list
         and (not need.get('with_role') or need.with_role in inventory_roles) %}
{%-     for path in need.secrets %}
{%-       set value = shared | traverse('secrets:' ~ path) %}
{%-       if value is not none %}
{%-         set group, key = path.split(':') %}
{%-         do given.setdefault(group, {}).update({key: value}) %}
{%-       endif %}
{%-     endfor %}
{%-   endif %}
{%- endfor %}
secrets: {{ given | json }}
{%- if shared.get('tls') is not none %}
tls: {{ shared.tls | json }}
{%- endif %}
role_secrets: {{ role_secrets | json }}
