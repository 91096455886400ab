# Every host gets the whole inventory (so each can derive peers, VIPs and
# firewall sources), the port map, and the secrets of its own roles:
# role_secrets.sls picks them from the secrets file, which lives outside the
# repo in a root-only pillar root (docs/secrets.md) and is never given whole.
# When a secret a host needs is missing, its state tree fails at render time
# naming the key.
{#- The topology's hosts, for the per-host TLS files below. #}
{%- set topology = opts.get('airflow_ha_topology', 'full') %}
{%- import_yaml 'inventory/' ~ topology ~ '.yaml' as inventory %}
base:
  '*':
    - ignore_missing: True
    - inventory
    - ports
    - site
    - role_secrets
    # the local rehearsal's own settings (make lab writes .lab/pillar/lab.sls)
    - lab
{#- A host's TLS key and certificate (tools/gen_tls.py writes tls/<host>.sls)
    go to that minion id only (the id the master authenticated, not a grain),
    so no host ever receives another host's key. #}
{%- for host in (inventory.get('hosts') or {}) | sort %}
  {{ host | json }}:
    - ignore_missing: True
    - tls.{{ host }}
{%- endfor %}
