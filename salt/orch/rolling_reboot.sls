{#- Day 2: reboot the cluster's hosts one at a time (kernel updates), each
    only once the whole cluster is healthy again after the one before.
    salt-run state.orchestrate orch.rolling_reboot
    salt-run state.orchestrate orch.rolling_reboot pillar='{"hosts": ["af2", "db3"]}'
    Pillar: `hosts` (these, in this order, a list or a comma-separated
    string; [] checks the cluster only), `include_master` (also the Salt
    master's own host, last), `master_host` (its inventory name, when its IP
    is not among the master's grains); an unknown or twice-listed host
    refuses the run. The plan is ha_cluster.reboot_plan's.
    First, with nothing changed: every host answers, Patroni has a leader and
    every member running within orch:reboot:max_lag_mb, RabbitMQ has every
    node running and no partition or alarm, every etcd member is healthy,
    Airflow is healthy through the VIP and every worker answers. Then per
    host: the Patroni leader switched over to a healthy replica if it is
    there, its Celery worker drained, the reboot, its minion back on a new
    boot, the quorum services healthy again (its member streaming), its
    Airflow components alive (orch/gates.jinja), the seconds it took.
    docs/operations.md#rolling-reboot-orchrolling_reboot -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- import 'orch/gates.jinja' as gates with context %}
{%- set reboot = orch.reboot %}
{%- set host_roles = orch.host_roles %}
{#- the plan (ha_cluster.reboot_plan: pillar hosts, include_master,
    master_host; the Salt master's own host, by its IP among the master's
    grains when master_host is not given, last and only when asked for):
    read from the state tree's _modules, since the master loads no custom
    module (orch/module_call.py) #}
{%- set result = salt['slsutil.renderer']('salt://orch/module_call.py', default_renderer='py',
                                          fun='ha_cluster.reboot_plan', kwarg={
      'host_roles': host_roles,
      'quorum_roles': orch.quorum_roles,
      'hosts': salt['pillar.get']('hosts', none),
      'include_master': salt['pillar.get']('include_master', false) | to_bool,
      'master_host': salt['pillar.get']('master_host', '') | string,
      'host_ips': orch.host_ips,
      'master_ips': grains.get('ipv4') or [],
   }) %}
{%- set plan, left_out, master, errors = result.plan, result.left_out, result.master, result.errors %}

{%- if errors %}

orch-reboot-refused:
  test.fail_without_changes:
    - name: {{ ('; '.join(errors) ~ ': nothing was rebooted') | json }}
    - failhard: True
{%- else %}

orch-reboot-plan:
  test.succeed_without_changes:
    - name: {{ ('rolling reboot, one host at a time, in this order: ' ~ (plan | join(', ') or 'none (a check only)')
               ~ ((' (the Salt master\'s host ' ~ master ~ ' last: this run ends with its reboot)') if master in plan else '')
               ~ ((' (left out: ' ~ left_out | join(', ') ~ ', the Salt master\'s host: pillar include_master true, or reboot it by hand)') if left_out else '')) | json }}

orch-reboot-minions-up:
  # every host answers before anything changes
  salt.function:
    - name: test.ping
    - tgt: {{ host_roles.keys() | sort | join(',') | json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
    - require:
      - test: orch-reboot-plan

{%- set ns = namespace(prev='orch-reboot-minions-up') %}
{{ gates.prechecks(orch, ns, 'orch-reboot', reboot.max_lag_mb) }}

{%- for host in plan %}
{%-   set roles = host_roles[host] %}
{%-   if 'postgres' in roles %}

orch-reboot-leader-off-{{ host }}:
  # the Patroni leader first switched over to a healthy replica (nothing if it leads not)
  salt.function:
    - name: ha_cluster.move_patroni_leader
    - tgt: {{ host | json }}
    - kwarg:
        member: {{ host | json }}
        max_lag_mb: {{ reboot.max_lag_mb }}
        wait: {{ reboot.switchover_wait | int }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-     set ns.prev = 'orch-reboot-leader-off-' ~ host %}
{%-   endif %}
{{ gates.drain(orch, ns, 'orch-reboot', host) }}

orch-reboot-{{ host }}:
  salt.function:
    - name: ha_cluster.reboot
    - tgt: {{ host | json }}
    - kwarg:
        # the master's own host: time for this run to end first
        delay: {{ [reboot.delay | int, 15 if host == master else 0] | max }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-   set ns.prev = 'orch-reboot-' ~ host %}
{%-   if host == master %}

orch-reboot-master-last:
  test.succeed_without_changes:
    - name: {{ (master ~ ', the Salt master\'s host, reboots now and this run ends; once it is back: salt-run state.orchestrate orch.rolling_reboot pillar=\'{"hosts": []}\' checks the cluster') | json }}
    - require:
      - salt: {{ ns.prev }}
{%-   else %}

orch-reboot-back-{{ host }}:
  # its minion answers on a new boot: retried while it is down
  salt.function:
    - name: ha_cluster.rebooted
    - tgt: {{ host | json }}
    - timeout: 15
    - retry:
        attempts: {{ [(reboot.timeout | int) // 25, 1] | max }}
        interval: 10
        until: True
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-     set ns.prev = 'orch-reboot-back-' ~ host %}
{%-     for via, kwargs in (gates.quorum_checks(orch, host, reboot.max_lag_mb) | load_json) | dictsort %}

orch-reboot-healthy-{{ host }}-via-{{ via }}:
  # the whole quorum tier healthy again: the host's member back, streaming, caught up
  salt.function:
    - name: ha_cluster.wait_healthy
    - tgt: {{ via | json }}
    - kwarg: {{ dict(kwargs, timeout=reboot.health_timeout | int) | json }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-       set ns.prev = 'orch-reboot-healthy-' ~ host ~ '-via-' ~ via %}
{%-     endfor %}
{{ gates.gates(orch, ns, 'orch-reboot', host, units=True) }}

orch-reboot-done-{{ host }}:
  # the seconds from its reboot to the cluster healthy again
  salt.function:
    - name: ha_cluster.rebooted
    - tgt: {{ host | json }}
    - kwarg:
        clear: True
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-     set ns.prev = 'orch-reboot-done-' ~ host %}
{%-   endif %}
{%- endfor %}
{%- endif %}
