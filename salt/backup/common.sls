{%- from 'backup/map.jinja' import backup with context %}
{%- from 'pki/map.jinja' import pki with context %}
# pgBackRest on the repository host and on every PostgreSQL member: the
# package, its configuration, and the transport between them: pgBackRest's
# TLS server (the cluster CA and this host's certificate; backup:transport
# tls, the default with tls:enabled) or SSH as the postgres user (ssh).
{%- if backup.transport == 'tls' %}
include:
  - pki
{%- endif %}

{%- for name, repo in backup.get('repos', {}).items() %}
backup-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: backup-packages
{%- endfor %}

backup-packages:
  pkg.installed:
    - pkgs: {{ backup.packages | json }}

backup-config-dir:
  file.directory:
    - name: {{ salt['file.dirname'](backup.config) | json }}
    - user: root
    - group: {{ backup.user | json }}
    - mode: '0750'
    - require:
      - pkg: backup-packages

backup-config:
  file.managed:
    - name: {{ backup.config | json }}
    - source: salt://backup/files/pgbackrest.conf.jinja
    - template: jinja
    - user: root
    - group: {{ backup.user | json }}
    - mode: '0640'
    - show_changes: False
    - context:
        b: {{ backup | json }}
    - require:
      - file: backup-config-dir

{%- if backup.transport == 'tls' %}

backup-tls-key:
  # pgBackRest runs as postgres: its own copy of the host key
  file.managed:
    - name: {{ backup.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: backup-packages
      - x509: pki-host-key

backup-server-unit:
  # pgBackRest's TLS server (ours: the package's unit differs per OS family)
  file.managed:
    - name: /etc/systemd/system/pgbackrest.service
    - mode: '0644'
    - contents: |
        # Managed by Salt (backup): pgBackRest's TLS server.
        [Unit]
        Description=pgBackRest TLS server
        After=network-online.target
        Wants=network-online.target
        StartLimitIntervalSec=0

        [Service]
        Type=simple
        User={{ backup.user }}
        Group={{ backup.user }}
        ExecStart=/usr/bin/pgbackrest --config={{ backup.config }} server
        ExecReload=/bin/kill -HUP $MAINPID
        Restart=always
        RestartSec=2

        [Install]
        WantedBy=multi-user.target

backup-server-running:
  service.running:
    - name: pgbackrest
    - enable: True
    - watch:
      - file: backup-server-unit
      - file: backup-config
      - file: backup-tls-key
      - x509: pki-host-cert
      - file: pki-ca-cert
{%- else %}
{%-   set peers = [backup.repo] if backup.member else backup.members %}

backup-ssh-dir:
  file.directory:
    - name: {{ backup.ssh_dir | json }}
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0700'
    - require:
      - pkg: backup-packages

backup-ssh-private-key:
  file.managed:
    - name: {{ (backup.ssh_dir ~ '/id_ed25519') | json }}
    - contents_pillar: secrets:pgbackrest:ssh_private_key
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: backup-ssh-dir

backup-ssh-authorized-key:
  # only pgBackRest's peers (the repository host, or the members) may log in with it
  file.managed:
    - name: {{ (backup.ssh_dir ~ '/authorized_keys') | json }}
    - contents: {{ ('restrict,from="' ~ (peers | map(attribute='ip') | join(',')) ~ '" '
                    ~ salt['pillar.get']('secrets:pgbackrest:ssh_public_key')) | json }}
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: backup-ssh-dir

backup-ssh-config:
  # the peers' host keys are learnt on first contact (TLS, the default, verifies certificates instead)
  file.managed:
    - name: {{ (backup.ssh_dir ~ '/config') | json }}
    - contents: |
        # Managed by Salt (backup): pgBackRest's SSH to its peers.
        Host {{ peers | map(attribute='fqdn') | join(' ') }}
            User {{ backup.user }}
            IdentityFile {{ backup.ssh_dir }}/id_ed25519
            StrictHostKeyChecking accept-new
            ServerAliveInterval 30
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0600'
    - require:
      - file: backup-ssh-dir

backup-server-stopped:
  # no TLS server without the tls transport
  service.dead:
    - name: pgbackrest
    - enable: False
    - require:
      - pkg: backup-packages
{%- endif %}
