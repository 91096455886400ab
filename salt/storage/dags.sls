{%- from 'storage/map.jinja' import storage with context %}
{%- set dags = storage.dags %}
# The DAG folder of an Airflow host: a symlink to a versioned release
# (docs/dag-deploy.md). New DAG sets are deployed by orch.deploy_dags, which
# validates them first; a highstate only gives a host without a release its
# first one, so it never deploys an unvalidated set over a running one.
{%- if dags.distribution in ['salt', 'git'] %}
{%-   if dags.distribution == 'git' %}
storage-dags-git-package:
  pkg.installed:
    - name: git
{%-   endif %}

storage-dags-releases-dir:
  file.directory:
    - name: {{ storage.releases_dir | json }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

storage-dags-release:
  dag_release.present:
    - name: {{ dags.folder | json }}
    - source: {{ (dags.git.url if dags.distribution == 'git' else dags.source) | json }}
{%-   if dags.distribution == 'git' %}
    - git_rev: {{ dags.git.rev | json }}
{%-   endif %}
    - releases_dir: {{ storage.releases_dir | json }}
    - keep: {{ storage.releases.keep | int }}
    - require:
      - file: storage-dags-releases-dir
{%-   if dags.distribution == 'git' %}
      - pkg: storage-dags-git-package
{%-   endif %}
{%- elif dags.distribution == 'nfs' %}
{%- set unit = dags.nfs_mount.strip('/').replace('/', '-') %}
storage-dags-nfs-client-package:
  pkg.installed:
    - name: {{ storage.nfs_client_package }}

# the mount of the DAG folder itself from before releases: the folder becomes a symlink
storage-dags-nfs-old-automount:
  service.dead:
    - name: {{ dags.folder.strip('/').replace('/', '-') }}.automount
    - enable: False
    - onlyif: test -d {{ dags.folder }} -a ! -L {{ dags.folder }}

storage-dags-nfs-old-mount:
  mount.unmounted:
    - name: {{ dags.folder }}
    - onlyif: test -d {{ dags.folder }} -a ! -L {{ dags.folder }}
    - require:
      - service: storage-dags-nfs-old-automount

storage-dags-nfs-old-fstab:
  mount.fstab_absent:
    - name: {{ storage.nfs.vip }}:/
    - fs_file: {{ dags.folder }}
    - require:
      - mount: storage-dags-nfs-old-mount

storage-dags-nfs-fstab:
  # mounted on first access by systemd's automount, so a host boots even
  # while the NFS VIP is moving; `hard` makes readers wait out a failover
  mount.mounted:
    - name: {{ dags.nfs_mount }}
    - device: {{ storage.nfs.vip }}:/
    - fstype: nfs4
    - opts: {{ (storage.nfs.mount_options + ['x-systemd.automount', 'x-systemd.mount-timeout=30']) | json }}
    - mkmnt: True
    - mount: False
    - persist: True
    - require:
      - pkg: storage-dags-nfs-client-package
      - mount: storage-dags-nfs-old-fstab

storage-dags-nfs-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - mount: storage-dags-nfs-fstab
      - mount: storage-dags-nfs-old-fstab

storage-dags-nfs-automount:
  service.running:
    - name: {{ unit }}.automount
    - enable: True
    - require:
      - cmd: storage-dags-nfs-units-reloaded

# the export's `current` is the release the NFS servers switched to (relative: it resolves under the mount)
storage-dags-nfs-folder-link:
  file.symlink:
    - name: {{ dags.folder }}
    - target: {{ dags.nfs_mount ~ '/current' }}
    - force: True
    - makedirs: True
    - require:
      - service: storage-dags-nfs-automount
{%- endif %}
