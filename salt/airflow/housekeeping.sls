{%- from 'airflow/map.jinja' import airflow with context %}
{#- Day-2 housekeeping of an Airflow host (pillar airflow:housekeeping,
    docs/operations.md): a timer deleting old task log files on every Airflow
    host, and `airflow db clean` on ONE host of the cluster: the first
    scheduler of the inventory (the host the orchestrates run one-off jobs
    on). One host, not a lock among all schedulers: nothing to coordinate;
    while that host is down the clean waits (Persistent=true runs a missed
    one at its next boot), and retention is a cut-off, so a late run loses
    nothing. #}
{%- set hk = airflow.housekeeping %}
{%- set logs = airflow.log_dir %}
include:
  - airflow.install
  - airflow.config

airflow-task-log-cleanup-service:
  file.managed:
    - name: {{ airflow.unit_dir }}/airflow-task-log-cleanup.service
    - mode: '0644'
    - contents: |
        # Managed by Salt (airflow): pillar airflow:housekeeping:task_log_days.
        [Unit]
        Description=Delete Airflow log files older than {{ hk.task_log_days }} days
        [Service]
        Type=oneshot
        User={{ airflow.user }}
        Group={{ airflow.user }}
        # base_log_folder (airflow.cfg): files, then directories left empty
        ExecStart=/usr/bin/find {{ logs }} -mindepth 1 -type f -mtime +{{ hk.task_log_days }} -delete
        ExecStart=/usr/bin/find {{ logs }} -mindepth 1 -type d -empty -mtime +{{ hk.task_log_days }} -delete
        Nice=10
        IOSchedulingClass=idle
    - require:
      - file: airflow-dirs

airflow-task-log-cleanup-timer:
  file.managed:
    - name: {{ airflow.unit_dir }}/airflow-task-log-cleanup.timer
    - mode: '0644'
    - contents: |
        # Managed by Salt (airflow): pillar airflow:housekeeping:task_log_schedule.
        [Unit]
        Description=Delete old Airflow log files ({{ hk.task_log_schedule }})
        [Timer]
        OnCalendar={{ hk.task_log_schedule }}
        Persistent=true
        RandomizedDelaySec=600
        [Install]
        WantedBy=timers.target

airflow-task-log-cleanup-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: airflow-task-log-cleanup-service
      - file: airflow-task-log-cleanup-timer

airflow-task-log-cleanup-timer-running:
  service.running:
    - name: airflow-task-log-cleanup.timer
    - enable: True
    - watch:
      - file: airflow-task-log-cleanup-timer
    - require:
      - cmd: airflow-task-log-cleanup-units-loaded

airflow-db-clean-script:
  file.managed:
    - name: {{ airflow.home }}/bin/airflow-ha-db-clean
    - source: salt://airflow/files/airflow-ha-db-clean
    - makedirs: True
    - user: root
    - group: root
    - mode: '0755'
{%- if airflow.db_clean_host %}

airflow-db-clean-service:
  file.managed:
    - name: {{ airflow.unit_dir }}/airflow-db-clean.service
    - mode: '0644'
    - contents: |
        # Managed by Salt (airflow): pillar airflow:housekeeping:db_clean_days, on
        # one host of the cluster (the first scheduler of the inventory).
        [Unit]
        Description=airflow db clean: metadata older than {{ hk.db_clean_days }} days
        After=network-online.target
        Wants=network-online.target
        [Service]
        Type=oneshot
        User={{ airflow.user }}
        Group={{ airflow.user }}
        # the DB URL and keys, as the component units get them (never on a command line)
        EnvironmentFile={{ airflow.env_file }}
        WorkingDirectory={{ airflow.home }}
        ExecStart={{ airflow.home }}/bin/airflow-ha-db-clean {{ airflow.venv }} {{ hk.db_clean_days }}
        TimeoutStartSec=6h
        Nice=10
    - require:
      - file: airflow-db-clean-script
      - file: airflow-env
      - cmd: airflow-installed

airflow-db-clean-timer:
  file.managed:
    - name: {{ airflow.unit_dir }}/airflow-db-clean.timer
    - mode: '0644'
    - contents: |
        # Managed by Salt (airflow): pillar airflow:housekeeping:db_clean_schedule.
        [Unit]
        Description=airflow db clean ({{ hk.db_clean_schedule }})
        [Timer]
        OnCalendar={{ hk.db_clean_schedule }}
        Persistent=true
        RandomizedDelaySec=900
        [Install]
        WantedBy=timers.target

airflow-db-clean-units-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: airflow-db-clean-service
      - file: airflow-db-clean-timer

airflow-db-clean-timer-running:
  service.running:
    - name: airflow-db-clean.timer
    - enable: True
    - watch:
      - file: airflow-db-clean-timer
    - require:
      - cmd: airflow-db-clean-units-loaded
{%- else %}

# another host runs the cluster's db clean: none here (e.g. after an inventory change)
airflow-db-clean-timer-dead:
  service.dead:
    - name: airflow-db-clean.timer
    - enable: False

airflow-db-clean-units-absent:
  file.absent:
    - names:
      - {{ airflow.unit_dir }}/airflow-db-clean.timer
      - {{ airflow.unit_dir }}/airflow-db-clean.service
    - require:
      - service: airflow-db-clean-timer-dead
{%- endif %}
