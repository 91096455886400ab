{%- from 'storage/map.jinja' import storage with context %}
{%- set dags = storage.dags %}
# The DAG folder of an Airflow host, by the cluster's distribution method.
{%- if dags.distribution == 'salt' %}
storage-dags-pushed:
  file.recurse:
    - name: {{ dags.folder }}
    - source: {{ dags.source }}
    - clean: True
    - makedirs: True
    - user: root
    - group: root
    - dir_mode: '0755'
    - file_mode: '0644'
    # Python's bytecode caches are not Salt's to remove
    - exclude_pat: 'E@(^|/)(README\.md|__pycache__)($|/)'
{%- elif dags.distribution == 'git' %}
storage-dags-git-package:
  pkg.installed:
    - name: git

storage-dags-pulled:
  git.latest:
    - name: {{ dags.git.url | json }}
    - target: {{ dags.folder }}
    - rev: {{ dags.git.rev | json }}
    - branch: {{ dags.git.rev | json }}
    - force_reset: True
    - require:
      - pkg: storage-dags-git-package
{%- elif dags.distribution == 'nfs' %}
{%- set unit = dags.folder.strip('/').replace('/', '-') %}
storage-dags-nfs-client-package:
  pkg.installed:
    - name: {{ storage.nfs_client_package }}

storage-dags-nfs-fstab:
  # mounted on first access by systemd's automount, so a host boots even
  # while the NFS VIP is moving; `hard` makes readers wait out a failover
  mount.mounted:
    - name: {{ dags.folder }}
    - device: {{ storage.nfs.vip }}:/
    - fstype: nfs4
    - opts: {{ (storage.nfs.mount_options + ['x-systemd.automount', 'x-systemd.mount-timeout=30']) | json }}
    - mkmnt: True
    - mount: False
    - persist: True
    - require:
      - pkg: storage-dags-nfs-client-package

storage-dags-nfs-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - mount: storage-dags-nfs-fstab

storage-dags-nfs-automount:
  service.running:
    - name: {{ unit }}.automount
    - enable: True
    - require:
      - cmd: storage-dags-nfs-units-reloaded
{%- endif %}
