{%- from 'ldap/map.jinja' import ldap with context %}
{%- from 'pki/map.jinja' import pki with context %}
# OpenLDAP slapd: the directory of the Airflow logins (docs/access-control.md).
# slapd.conf (not cn=config) checked by slaptest before it replaces the live
# one, LDAPS only with this host's certificate of the cluster CA, the memberof
# overlay, root password (hashed) from secrets:ldap:admin_password in a 0640
# include (root:openldap), the search account and the seed (ldap:seed) added once over ldapi://.
{%- if ldap.tls_fix %}
ldap-needs-tls:
  test.fail_without_changes:
    - name: {{ ldap.tls_fix | json }}
    - failhard: True
{%- else %}
include:
  - pki

{%- if grains['os_family'] == 'Debian' %}
# Salt's debconf module needs debconf-get-selections (reloaded in this run)
ldap-debconf-utils:
  pkg.installed:
    - name: debconf-utils
    - reload_modules: True

# no database of the package's own (dc=nodomain): slapd.conf below makes ours
ldap-debconf:
  debconf.set:
    - name: slapd
    - data:
        'slapd/no_configuration': {'type': 'boolean', 'value': True}
    - require:
      - pkg: ldap-debconf-utils
    - require_in:
      - pkg: ldap-packages
{%- endif %}

ldap-packages:
  pkg.installed:
    - pkgs: {{ ldap.packages | json }}

ldap-admin-password:
  # slapd.conf includes this line: the root DN's {SSHA} hash
  file.managed:
    - name: {{ ldap.admin_password_file | json }}
    - contents: {{ ('rootpw ' ~ salt['airflow_ha.ssha'](salt['pillar.get']('secrets:ldap:admin_password'), 'rootpw')) | json }}
    - user: root
    - group: {{ ldap.group | json }}
    - mode: '0640'
    - show_changes: False
    - require:
      - pkg: ldap-packages

ldap-tls-key:
  # slapd's own copy of the host key (it runs as {{ ldap.user }})
  file.managed:
    - name: {{ ldap.key | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ ldap.user | json }}
    - group: {{ ldap.group | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: ldap-packages
      - x509: pki-host-key

ldap-data-dir:
  file.directory:
    - name: {{ ldap.data_dir | json }}
    - user: {{ ldap.user | json }}
    - group: {{ ldap.group | json }}
    - mode: '0700'
    - require:
      - pkg: ldap-packages

ldap-run-dir:
  # slaptest checks that the pidfile's directory exists; the init script makes
  # it only when it starts slapd, after this config is checked
  file.directory:
    - name: {{ ldap.run_dir | json }}
    - user: {{ ldap.user | json }}
    - group: {{ ldap.group | json }}
    - mode: '0755'
    - require:
      - pkg: ldap-packages

ldap-config:
  file.managed:
    - name: {{ ldap.config | json }}
    - source: salt://ldap/files/slapd.conf.jinja
    - template: jinja
    - user: root
    - group: {{ ldap.group | json }}
    - mode: '0640'
    - context:
        ldap: {{ ldap | json }}
    # the new file is tested (with the live includes) before it replaces the old
    - check_cmd: slaptest -u -f
    - require:
      - file: ldap-admin-password
      - file: ldap-tls-key
      - file: ldap-data-dir
      - file: ldap-run-dir
      - x509: pki-host-cert

ldap-defaults:
  file.managed:
    - name: {{ ldap.defaults_file | json }}
    - source: salt://ldap/files/slapd.default.jinja
    - template: jinja
    - mode: '0644'
    - context:
        ldap: {{ ldap | json }}
    - require:
      - pkg: ldap-packages

ldap-running:
  service.running:
    - name: {{ ldap.service | json }}
    - enable: True
    - watch:
      - file: ldap-config
      - file: ldap-defaults
      - file: ldap-admin-password
      # slapd reads its certificate at start only: a renewal restarts it
      - file: ldap-tls-key
      - x509: pki-host-cert

{%- set hashes = {'bind': salt['airflow_ha.ssha'](salt['pillar.get']('secrets:ldap:bind_password'), 'bind'),
                  'seed': salt['airflow_ha.ssha'](salt['pillar.get']('secrets:ldap:seed_password'), 'seed')} %}
ldap-seed-file:
  file.managed:
    - name: {{ ldap.seed_file | json }}
    - source: salt://ldap/files/seed.ldif.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - context:
        ldap: {{ ldap | json }}
        hashes: {{ hashes | json }}
    - require:
      - pkg: ldap-packages

ldap-root-password-file:
  # ldapadd -y reads the root password from here (root only): never on a command line
  file.managed:
    - name: {{ (ldap.admin_password_file ~ '.clear') | json }}
    - contents_pillar: secrets:ldap:admin_password
    # ldapadd -y takes the whole file as the password, a newline too
    - contents_newline: False
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False

ldap-seeded:
  cmd.run:
    # -c: entries already there are left alone (exit 68 each); the seed is
    # done when every entry of the file exists (the `unless`)
    - name: {{ ("ldapadd -c -x -H " ~ ldap.ldapi_uri ~ " -D '" ~ ldap.admin_dn ~ "' -y " ~ ldap.admin_password_file ~ ".clear -f "
                ~ ldap.seed_file ~ "; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 68 ]") | json }}
    - unless: {{ ("sed -n 's/^dn: //p' " ~ ldap.seed_file ~ " | while IFS= read -r dn; do ldapsearch -LLL -x -H " ~ ldap.ldapi_uri ~ " -D '"
                  ~ ldap.admin_dn ~ "' -y " ~ ldap.admin_password_file ~ ".clear -s base -b \"$dn\" dn >/dev/null 2>&1 || exit 1; done") | json }}
    - shell: /bin/bash
    - output_loglevel: quiet
    - require:
      - service: ldap-running
      - file: ldap-seed-file
      - file: ldap-root-password-file
{%- endif %}
