{%- from 'storage/map.jinja' import storage with context %}
# NFS primary and standby of the DAG folder. Salt is the single writer of the
# DAGs and pushes them to BOTH servers on every deploy, so the standby is
# always in sync without a replication daemon (lsyncd or DRBD would add a
# second source of truth to keep consistent after a failover). The NFS VIP
# (inventory:vips:nfs) moves between them with keepalived (salt/keepalived).
include:
  - keepalived

storage-nfs-server-package:
  pkg.installed:
    - name: {{ storage.nfs_server_package }}

storage-nfs-export-dir:
  file.recurse:
    - name: {{ storage.nfs.export }}
    - source: {{ storage.dags.source }}
    - clean: True
    - makedirs: True
    - user: root
    - group: root
    - dir_mode: '0755'
    - file_mode: '0644'
    - exclude_pat: README.md

storage-nfs-exports:
  file.managed:
    - name: /etc/exports
    - source: salt://storage/files/exports.jinja
    - template: jinja
    - mode: '0644'
    - context:
        nfs: {{ storage.nfs | json }}
    - require:
      - pkg: storage-nfs-server-package

storage-nfs-server-running:
  service.running:
    - name: {{ storage.nfs_server_service }}
    - enable: True
    - require:
      - file: storage-nfs-export-dir

storage-nfs-exports-applied:
  cmd.run:
    - name: exportfs -ra
    - onchanges:
      - file: storage-nfs-exports
    - require:
      - service: storage-nfs-server-running
