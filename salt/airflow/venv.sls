{%- from 'airflow/map.jinja' import airflow with context %}
# The virtualenv of pillar airflow:version at <home>/venv-<version>, from its
# pinned requirements (no online constraints), built beside the one the units
# run: nothing here switches or restarts anything (airflow.install points the
# symlink <home>/venv at it; orch.airflow_upgrade builds every host's first,
# then switches one host at a time).
airflow-build-packages:
  pkg.installed:
    - pkgs: {{ airflow.packages | json }}

airflow-user:
  user.present:
    - name: {{ airflow.user }}
    - home: {{ airflow.home }}
    - system: True
    - shell: /usr/sbin/nologin

airflow-venv-adopted:
  # the layout before versioned venvs (<home>/venv a real directory): moved to
  # venv-<its Airflow version> and symlinked in one go, the units running on
  module.run:
    - airflow_ha.adopt_venv:
      - link: {{ airflow.venv | json }}
      - home: {{ airflow.home | json }}
    - onlyif: {{ ('test -d ' ~ airflow.venv ~ ' && test ! -L ' ~ airflow.venv if airflow.venv != airflow.venv_dir
                  else 'false') | json }}

airflow-requirements:
  file.managed:
    - name: {{ airflow.requirements_file }}
    - source: salt://airflow/files/{{ airflow.requirements }}
    - makedirs: True
    - mode: '0644'

airflow-requirements-unversioned-absent:
  # the one pinned file of the layout before versioned venvs
  file.absent:
    - name: {{ airflow.home }}/requirements.txt

airflow-venv:
  cmd.run:
    - name: {{ airflow.python }} -m venv {{ airflow.venv_dir }}
    - creates: {{ airflow.venv_dir }}/bin/pip
    - require:
      - pkg: airflow-build-packages
      - module: airflow-venv-adopted

airflow-installed:
  cmd.run:
    # the installed pinned file is kept in the venv: a changed pin (a new
    # provider, issue 26's FAB) reinstalls, an unchanged one does not. pip
    # through the venv's own python: its scripts may name another path
    - name: {{ (airflow.venv_dir ~ '/bin/python -m pip install --no-deps ' ~ airflow.pip_args ~ ' -r '
                ~ airflow.requirements_file ~ ' && cp ' ~ airflow.requirements_file ~ ' '
                ~ airflow.venv_dir ~ '/.airflow_ha_requirements') | json }}
    - unless: {{ (airflow.venv_dir ~ "/bin/python -m pip show apache-airflow | grep -qx 'Version: " ~ airflow.version
                  ~ "' && cmp -s " ~ airflow.requirements_file ~ " " ~ airflow.venv_dir ~ "/.airflow_ha_requirements") | json }}
    - require:
      - cmd: airflow-venv
      - file: airflow-requirements
