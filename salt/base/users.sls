{%- from 'base/map.jinja' import base with context %}
{%- set admin = base.admin_user %}
# The admin user logs in by SSH key only (no password is set) and may sudo.
base-admin-user:
  user.present:
    - name: {{ admin.name | json }}
    - shell: {{ admin.shell | json }}
    - createhome: True
    - groups:
      - {{ base.admin_group | json }}
    - require:
      - pkg: base-common-packages

{%- if admin.ssh_authorized_keys %}
base-admin-ssh-keys:
  ssh_auth.manage:
    - user: {{ admin.name | json }}
    - ssh_keys: {{ admin.ssh_authorized_keys | json }}
    - require:
      - user: base-admin-user
{%- endif %}

base-admin-sudoers:
  file.managed:
    - name: /etc/sudoers.d/{{ admin.name }}
    - contents: "{{ admin.name }} ALL=(ALL) NOPASSWD: ALL"
    - mode: '0440'
    - user: root
    - group: root
    - check_cmd: /usr/sbin/visudo -cf
    - require:
      - user: base-admin-user
