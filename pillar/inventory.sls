{#- The topology file of pillar/inventory/ that describes this cluster is
    chosen by the `airflow_ha_topology` option of the master config (or of
    the minion config when masterless); `full` by default. #}
{%- set topology = opts.get('airflow_ha_topology', 'full') %}
{%- import_yaml 'inventory/' ~ topology ~ '.yaml' as inventory %}
inventory: {{ inventory | json }}
{#- This host's roles, for the pillar matches of salt/top.sls. #}
roles: {{ inventory.get('hosts', {}).get(grains['id'], {}).get('roles', []) | json }}
