{%- from 'card_target/map.jinja' import card with context %}
# The card-processing target: a service account that only the Celery workers'
# key opens, and only from the workers' addresses; batch folders; the script.
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
