{%- from 'airflow/map.jinja' import airflow with context %}
# One virtualenv per host from the pinned requirements (no online constraints).
airflow-build-packages:
  pkg.installed:
    - pkgs: {{ airflow.packages | json }}

airflow-user:
  user.present:
    - name: {{ airflow.user }}
    - home: {{ airflow.home }}
    - system: True
    - shell: /usr/sbin/nologin

airflow-requirements:
  file.managed:
    - name: {{ airflow.home }}/requirements.txt
    - source: salt://airflow/files/{{ airflow.requirements }}
    - makedirs: True
    - mode: '0644'

airflow-venv:
  cmd.run:
    - name: {{ airflow.python }} -m venv {{ airflow.venv }}
    - creates: {{ airflow.venv }}/bin/pip
    - require:
      - pkg: airflow-build-packages

airflow-installed:
  cmd.run:
    # the installed pinned file is kept in the venv: a changed pin (a new
    # provider, issue 26's FAB) reinstalls, an unchanged one does not
    - name: {{ (airflow.venv ~ '/bin/pip install --no-deps ' ~ airflow.pip_args ~ ' -r ' ~ airflow.home
                ~ '/requirements.txt && cp ' ~ airflow.home ~ '/requirements.txt ' ~ airflow.venv ~ '/.airflow_ha_requirements') | json }}
    - unless: {{ (airflow.venv ~ "/bin/pip show apache-airflow | grep -qx 'Version: " ~ airflow.version ~ "' && cmp -s "
                  ~ airflow.home ~ "/requirements.txt " ~ airflow.venv ~ "/.airflow_ha_requirements") | json }}
    - require:
      - cmd: airflow-venv
      - file: airflow-requirements
