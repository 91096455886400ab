{%- from 'card_target/map.jinja' import card with context %}
# The card-processing target: a service account that only the Celery workers'
# key opens, and only from the addresses of the card pool's workers (those
# serving the card DAG's queue; the firewall admits SSH from them only too,
# pillar/ports.sls); batch folders (with the
# idempotency ledger of card-process-batch); the script, which reads the
# folders under --base.
card-target-account:
  user.present:
    - name: {{ card.user }}
    - home: /home/{{ card.user }}
    - createhome: True
    - shell: /bin/bash
    - system: True

card-target-worker-key:
  ssh_auth.manage:
    - user: {{ card.user }}
    - ssh_keys:
      - {{ salt['pillar.get']('secrets:card:ssh_public_key') | json }}
    - options:
      - from="{{ card.worker_ips | join(',') }}"
      - no-agent-forwarding
      - no-port-forwarding
      - no-X11-forwarding
    - require:
      - user: card-target-account

card-target-base-dir:
  file.directory:
    - name: {{ card.base_dir }}
    - user: root
    - group: {{ card.user }}
    - mode: '0750'
    - require:
      - user: card-target-account

{%- for folder, mode in card.folders.items() %}
card-target-folder-{{ folder }}:
  file.directory:
    - name: {{ card.base_dir }}/{{ folder }}
    - user: {{ card.user }}
    - group: {{ card.user }}
    - mode: '{{ mode }}'
    - require:
      - file: card-target-base-dir
{%- endfor %}

card-target-processing-script:
  file.managed:
    - name: {{ card.script }}
    - source: salt://card_target/files/card-process-batch.py
    - mode: '0755'
    - user: root
    - group: root

# The SSH host key of the target from pillar (tools/gen_secrets.py), so the
# workers' connection verifies it (AIRFLOW_CONN_CARD_TARGET_SSH host_key)
# instead of trusting whatever answers.
card-target-ssh-host-key:
  file.managed:
    - name: {{ card.ssh_host_key | json }}
    - contents_pillar: secrets:card:host_private_key
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False

card-target-ssh-host-public-key:
  file.managed:
    - name: {{ (card.ssh_host_key ~ '.pub') | json }}
    - contents_pillar: secrets:card:host_public_key
    - user: root
    - group: root
    - mode: '0644'
    # public, but a value of the secrets pillar: no value of it is printed
    - show_changes: False

card-target-sshd-reloaded:
  # (try-restart: a stopped sshd stays stopped; open sessions survive)
  cmd.run:
    - name: systemctl try-restart {{ card.ssh_service }}
    - onchanges:
      - file: card-target-ssh-host-key
