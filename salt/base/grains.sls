{%- from 'base/map.jinja' import this_host with context %}
# The inventory's roles as a grain, for `salt -G roles:<role>` targeting.
base-roles-grain:
  grains.list_present:
    - name: roles
    - value: {{ this_host.roles | json }}
