"""
Reading a systemd ``EnvironmentFile`` (``KEY=value`` lines, values optionally
in single quotes), as the Airflow units' ``/etc/default/airflow``: the one
parser of the custom modules that run Airflow's CLI with its environment.

Synced to minions with the modules; modules call it as
``__utils__["ha_env.read_env_file"]``. Tests and tools may import
``_utils.ha_env``.
"""


def read_env_file(path):
    """The variables ``path`` sets, as a dict; comments and blank lines skipped."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
    return env
