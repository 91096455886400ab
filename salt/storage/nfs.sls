{%- from 'storage/map.jinja' import storage with context %}
# NFS primary and standby of the DAG folder. Salt is the single writer of the
# DAGs and stages each release on BOTH servers, switching both, so the standby is
# always in sync without a replication daemon (lsyncd or DRBD would add a
# second source of truth to keep consistent after a failover). The NFS VIP
# (inventory:vips:nfs) moves between them with keepalived (salt/keepalived).
include:
  - keepalived

storage-nfs-server-package:
  pkg.installed:
    - name: {{ storage.nfs_server_package }}

# The export holds the versioned releases of the DAG set and `current`, the
# symlink orch.deploy_dags switches on both servers (docs/dag-deploy.md); a
# server without a release gets its first one here.
storage-nfs-export-dir:
  file.directory:
    - names:
      - {{ storage.nfs.export }}
      - {{ storage.nfs_releases_dir }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

storage-nfs-dags-release:
  dag_release.present:
    - name: {{ storage.nfs_link | json }}
    - source: {{ storage.dags.source | json }}
    - releases_dir: {{ storage.nfs_releases_dir | json }}
    - keep: {{ storage.releases.keep | int }}
    - require:
      - file: storage-nfs-export-dir

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
