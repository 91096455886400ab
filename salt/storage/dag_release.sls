{#- One step of orch.deploy_dags / orch.rollback_dags on this host, chosen by
    the orchestrate's pillar `dag_release:step` (docs/dag-deploy.md):
      validate  - fetch the set and validate it in the Airflow venv (first scheduler)
      stage     - stage the set as a release (every host of the releases)
      switch    - point the DAG folder at `dag_release:release` (staged, previous or a version)
      available - check that `dag_release:release` is staged here (rollback, before any switch)
      parsed    - wait until the DAG processors parsed the current release, then
                  record its id in Airflow (Variable airflow_ha_dag_release) (first scheduler) -#}
{%- from 'storage/map.jinja' import storage with context %}
{%- set step = salt['pillar.get']('dag_release:step', '') %}
{%- set source = salt['pillar.get']('dag_release:source') or
                 (storage.dags.git.url if storage.dags.distribution == 'git' else storage.dags.source) %}
{%- set git_rev = storage.dags.git.rev if storage.dags.distribution == 'git' and source == storage.dags.git.url else None %}
{%- set release = salt['pillar.get']('dag_release:release', 'staged') %}
{%- set here = salt['pillar.get']('dag_release:where', 'local') %}
{%- set releases_dir = storage.nfs_releases_dir if here == 'nfs' else storage.releases_dir %}
{%- set link = storage.nfs_link if here == 'nfs' else storage.dags.folder %}
{%- if step not in ['validate', 'stage', 'switch', 'available', 'parsed'] %}
{%-   do salt['test.exception']("pillar dag_release:step is " ~ (step | json) ~ ": storage.dag_release is run by orch.deploy_dags and orch.rollback_dags, which set it") %}
{%- endif %}
{%- if step in ['validate', 'parsed'] %}
{%-   from 'airflow/map.jinja' import airflow with context %}
{%- endif %}

{%- if step == 'validate' %}
storage-dag-release-validated:
  dag_release.validated:
    - source: {{ source | json }}
    - git_rev: {{ git_rev | json }}
    - releases_dir: {{ releases_dir | json }}
    - venv: {{ airflow.venv | json }}
    - env_file: {{ airflow.env_file | json }}
    - runas: {{ airflow.user | json }}
{%- elif step == 'stage' %}
storage-dag-release-staged:
  dag_release.staged:
    - name: {{ releases_dir | json }}
    - source: {{ source | json }}
    - git_rev: {{ git_rev | json }}
{%- elif step == 'switch' %}
storage-dag-release-switched:
  dag_release.switched:
    - name: {{ link | json }}
    - release: {{ release | json }}
    - releases_dir: {{ releases_dir | json }}
    - keep: {{ storage.releases.keep | int }}
{%- elif step == 'available' %}
storage-dag-release-available:
  dag_release.release_available:
    - name: {{ releases_dir | json }}
    - release: {{ release | json }}
    - link: {{ link | json }}
{%- elif step == 'parsed' %}
storage-dag-release-parsed:
  dag_release.parsed:
    - name: {{ link | json }}
    - releases_dir: {{ storage.read_releases_dir | json }}
    - validations_dir: {{ storage.releases_dir | json }}
    - url: {{ airflow.api_url | json }}
    - ca_file: {{ (airflow.tls.ca_file if airflow.tls.enabled else None) | json }}
    - timeout: {{ storage.releases.parse_timeout | int }}
    - major: {{ airflow.major | int }}

# the release id where Airflow's users look (Admin > Variables), each change in Airflow's audit log
storage-dag-release-recorded:
  dag_release.recorded:
    - name: {{ link | json }}
    - variable: {{ storage.releases.variable | json }}
    - url: {{ airflow.api_url | json }}
    - ca_file: {{ (airflow.tls.ca_file if airflow.tls.enabled else None) | json }}
    - major: {{ airflow.major | int }}
    - require:
      - dag_release: storage-dag-release-parsed
{%- endif %}
