{%- from 'ftp/map.jinja' import ftp, this_host with context %}
{%- from 'pki/map.jinja' import pki with context %}
# vsftpd: one chrooted local account (password from pillar secrets:ftp:password),
# TLS required for login and data (the host's certificate of the cluster CA
# with pillar tls:enabled), passive ports of the port map.
{%- if ftp.tls.pki_key %}
include:
  - pki
{%- endif %}

ftp-vsftpd-package:
  pkg.installed:
    - name: {{ ftp.package }}

ftp-nologin-shell-allowed:
  # vsftpd's PAM stack (pam_shells) only admits users whose shell is listed
  file.append:
    - name: /etc/shells
    - text: /usr/sbin/nologin

ftp-account:
  user.present:
    - name: {{ ftp.user }}
    - home: {{ ftp.root }}/{{ ftp.user }}
    - createhome: True
    - shell: /usr/sbin/nologin
    - password: {{ salt['pillar.get']('secrets:ftp:password') | json }}
    - hash_password: True
    - require:
      - file: ftp-nologin-shell-allowed

ftp-chroot-root:
  # a chroot vsftpd accepts must not be writable by the user
  file.directory:
    - name: {{ ftp.root }}/{{ ftp.user }}
    - user: root
    - group: {{ ftp.user }}
    - mode: '0750'
    - require:
      - user: ftp-account

{%- for folder in ftp.folders %}
ftp-folder-{{ folder }}:
  file.directory:
    - name: {{ ftp.root }}/{{ ftp.user }}/{{ folder }}
    - user: {{ ftp.user }}
    - group: {{ ftp.user }}
    - mode: '0750'
    - require:
      - file: ftp-chroot-root
{%- endfor %}

{%- if ftp.tls.pki_key %}
ftp-tls-key:
  # vsftpd's own copy of the host key: it reads it as root before dropping
  # privileges, so root-only
  file.managed:
    - name: {{ ftp.tls.key | json }}
    - source: {{ pki.host_key | json }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - x509: pki-host-key
    - require_in:
      - file: ftp-vsftpd-config
{%- endif %}

{%- if ftp.tls.self_signed %}
ftp-tls-dir:
  file.directory:
    - name: {{ ftp.tls_dir }}
    - mode: '0700'

ftp-tls-self-signed:
  cmd.run:
    - name: >-
        openssl req -x509 -newkey rsa:3072 -nodes -days 825
        -subj "/CN={{ this_host.fqdn }}"
        -addext "subjectAltName=DNS:{{ this_host.fqdn }},DNS:{{ this_host.name }},IP:{{ this_host.ip }}"
        -keyout {{ ftp.tls.key }} -out {{ ftp.tls.cert }}
        && chmod 0600 {{ ftp.tls.key }}
    - creates: {{ ftp.tls.key }}
    - require:
      - file: ftp-tls-dir
    - require_in:
      - file: ftp-vsftpd-config
{%- endif %}

ftp-userlist:
  file.managed:
    - name: {{ ftp.userlist }}
    - contents: {{ ftp.user | json }}
    - mode: '0644'
    - require:
      - pkg: ftp-vsftpd-package

ftp-vsftpd-config:
  file.managed:
    - name: {{ ftp.config }}
    - source: salt://ftp/files/vsftpd.conf.jinja
    - template: jinja
    - mode: '0600'
    - context:
        ftp: {{ ftp | json }}
    - require:
      - pkg: ftp-vsftpd-package
      - file: ftp-userlist

{%- for boolean in ftp.selinux_booleans %}
ftp-selinux-{{ boolean }}:
  selinux.boolean:
    - name: {{ boolean | json }}
    - value: True
    - persist: True
    - require_in:
      - service: ftp-vsftpd-running

{% endfor %}
ftp-vsftpd-running:
  service.running:
    - name: {{ ftp.service }}
    - enable: True
    - watch:
      - file: ftp-vsftpd-config
      - file: ftp-userlist
{%- if ftp.tls.pki_key %}
      # vsftpd reads its certificate at start only: a renewal restarts it
      - file: ftp-tls-key
      - x509: pki-host-cert
{%- endif %}
    - require:
      - file: ftp-chroot-root
