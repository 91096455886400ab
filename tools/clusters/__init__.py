"""Real clusters on this machine, configured from the states' own templates:
shared by the tests (tests/postgres, tests/rabbitmq, tests/haproxy, ...) and
the drills (tools/drill_*.py). Importable as ``clusters.<module>`` with
tools/ on sys.path (tests/conftest.py and the drills put it there).

- ``templates``: a state's template rendered with its context; the compile
  and render helpers of a host's SLS (``state_render``).
- ``patroni``: etcd + Patroni + PostgreSQL (``PatroniCluster``).
- ``rabbitmq``: a RabbitMQ cluster (``RabbitCluster``).
- ``haproxy``: HAProxy in front of a Patroni cluster, switchover drill.
- ``tls_material``: a throwaway CA and host certificate as files.
"""
