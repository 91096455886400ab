# Every host gets the whole inventory (so each can derive peers, VIPs and
# firewall sources), the port map, and the secrets of its own roles:
# role_secrets.sls picks them from the secrets file, which lives outside the
# repo in a root-only pillar root (docs/secrets.md) and is never given whole.
# When a secret a host needs is missing, its state tree fails at render time
# naming the key.
{#- The topology's hosts, for the CA host's signing policies below. #}
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
{#- The hosts' signing policies (tools/gen_tls.py writes tls/ca.sls) go to the
    CA host only (the minion id the master authenticated, not a grain): every
    other host makes its own key and asks that host for its certificate. #}
{%- for host, spec in (inventory.get('hosts') or {}) | dictsort %}
{%- if 'ca' in (spec.roles or []) %}
  {{ host | json }}:
    - ignore_missing: True
    - tls.ca
{%- endif %}
{%- endfor %}
