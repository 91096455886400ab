{#- Day 2: a new Celery worker. Add the host to the inventory (roles:
    [worker]), start the machine with a minion pointing at the master, and
    pre-seed its public key on the master (/etc/salt/pki/master/minions/NAME,
    or `salt-key -a NAME` once it shows as unaccepted), then:
    salt-run state.orchestrate orch.add_worker pillar='{"host": "worker2"}'
    First every host re-reads the inventory (hosts files; the firewalls, the
    master's Salt ports included, now admit the new host); the run waits for
    the new minion to answer, gives it its highstate, then every other host
    re-applies what derives from the inventory (the card target's allowed
    addresses when the new host's `queues` hold card, NFS's, Prometheus
    targets), and the smoke DAG proves the cluster. Without `queues` the new
    worker serves the default queue only (docs/inventory.md, worker pools). tools/lab/drill.py add_worker rehearses it on the lab. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set host = salt['pillar.get']('host') %}
{%- if not host %}
{%-   do salt['test.exception']("orch.add_worker: pass pillar='{\"host\": \"NAME\"}' (a host of the inventory with the worker role)") %}
{%- endif %}

orch-add-worker-refresh:
  # (the new host reads its pillar when it connects)
  salt.function:
    - name: saltutil.refresh_pillar
    - tgt: {{ ('* and not ' ~ host) | json }}
    - tgt_type: compound

orch-add-worker-base-everywhere:
  # hosts files and firewall sources now include the new host (the master's
  # Salt ports too: until then the new minion cannot reach it)
  salt.state:
    - tgt: {{ ('* and not ' ~ host) | json }}
    - tgt_type: compound
    - sls: [base]
    - failhard: True
    - require:
      - salt: orch-add-worker-refresh

orch-add-worker-minion-answers:
  # its key accepted, it reconnects within its auth retry (10 s)
  salt.function:
    - name: test.ping
    - tgt: {{ host | json }}
    - retry:
        attempts: 18
        interval: 10
    - failhard: True
    - require:
      - salt: orch-add-worker-base-everywhere

orch-add-worker-modules-synced:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ host | json }}
    - failhard: True
    - require:
      - salt: orch-add-worker-minion-answers

orch-add-worker-highstate:
  salt.state:
    - tgt: {{ host | json }}
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-add-worker-modules-synced

orch-add-worker-others-follow-the-inventory:
  # only what derives from the inventory changes (no restart of Airflow's
  # components: their configuration does not list the workers)
  salt.state:
    - tgt: {{ ('* and not ' ~ host) | json }}
    - tgt_type: compound
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-add-worker-highstate

orch-add-worker-smoke:
  salt.function:
    - name: airflow_ha.smoke_test
    - tgt: {{ orch.migrate_host | json }}
    - kwarg:
        url: {{ orch.api_url | json }}
        ca_file: {{ orch.ca_file | json }}
        major: {{ orch.airflow_major }}
    - require:
      - salt: orch-add-worker-others-follow-the-inventory
