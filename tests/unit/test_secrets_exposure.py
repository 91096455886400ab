"""Issue 17, by code: nothing in the state tree or the tools asks Salt for a
job whose return would carry pillar (the master writes every job's return to
its job cache), and every file state that writes a secret hides its diff."""

import re

import pytest

from tests.helpers.inventory import REPO

# functions whose return is (part of) a minion's pillar, or a runner run from a state (its return is a job)
PILLAR_RETURNING = re.compile(r"saltutil\.runner|cache\.pillar|pillar\.(items|raw|data|ext)\b|cache\.fetch")
SCANNED = ["salt", "_modules", "_states", "_utils", "tools", "Makefile", "Vagrantfile"]
# the drill names the job cache's contents in its documentation, not as calls
ALLOWED = set()


def files(*roots):
    for root in roots:
        path = REPO / root
        for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            if f.suffix != ".pyc" and "__pycache__" not in f.parts:
                yield f


def test_nothing_calls_a_function_that_returns_pillar_into_a_job():
    hits = []
    for f in files(*SCANNED):
        for n, line in enumerate(f.read_text(errors="ignore").splitlines(), 1):
            if PILLAR_RETURNING.search(line) and not line.lstrip().startswith(("#", "{#")) \
                    and str(f.relative_to(REPO)) not in ALLOWED:
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == [], "a job returning pillar lands in the master's job cache (docs/secrets.md)"


def test_the_orchestrate_reads_the_masters_own_pillar():
    text = (REPO / "salt" / "orch" / "map.jinja").read_text()
    assert "salt['pillar.get']('inventory'" in text
    assert not PILLAR_RETURNING.search(re.sub(r"\{#.*?#\}", "", text, flags=re.S))


# what a template or a state's contents reads when it writes a secret
SECRET_READ = re.compile(r"secrets[:.\[](?!card:\w*public)|\bs\.(postgres|rabbitmq|airflow)\.|_?password\b|auth_pass|"
                         r"tls:key|contents_pillar:\s*(secrets|tls:key)|\bhost_key\b")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def state_blocks(text):
    """(state id, its lines without comments and Jinja assignments) of an SLS: a block starts at a line in
    column 0 ending with ':'."""
    block, sid = [], None
    for line in text.splitlines():
        if re.match(r"^[^\s#{%-][^#]*:\s*$", line):
            if sid:
                yield sid, block
            sid, block = line.rstrip(":").strip(), []
        elif sid and not line.lstrip().startswith("#") and not re.match(r"^\{%-?\s*set\b", line):
            block.append(line)
    if sid:
        yield sid, block


def template_of(block):
    """The template a file state renders with Jinja (TOFS files_switch or salt://), or None."""
    body = "\n".join(block)
    if not re.search(r"^\s+- template: jinja", body, re.M):
        return None
    m = re.search(r"files_switch\(\s*'([\w/]+)',\s*\['([^']+)'\]", body)
    if m:
        return REPO / "salt" / m.group(1) / "files" / m.group(2)
    m = re.search(r"salt://([\w/.-]+)", body)
    return REPO / "salt" / m.group(1) if m else None


def reads_a_secret(text):
    """Whether Jinja code of ``text`` reads a secret."""
    return any(SECRET_READ.search(code) for code in JINJA.findall(text))


def secret_file_states():
    for sls in sorted((REPO / "salt").rglob("*.sls")):
        text = sls.read_text()
        # Jinja variables set from a secret ({%- set passwords = {...: salt['pillar.get']('secrets:...')} %})
        holders = [m.group(1) for m in re.finditer(r"\{%-?\s*set\s+(\w+)\s*=(.*?)%\}", text, re.S)
                   if SECRET_READ.search(m.group(2))]
        for sid, block in state_blocks(text):
            body = "\n".join(block)
            if not re.search(r"^\s+file\.managed:", body, re.M):
                continue
            template = template_of(block)
            # (a copy of the host's own TLS key: ``source: {{ pki.host_key | json }}``)
            if (reads_a_secret(body) or re.search(r"contents_pillar:\s*(secrets:(?!card:\w*public)|tls:key)", body)
                    or any(re.search(r"\{\{-?\s*" + h + r"\b", body) for h in holders)
                    or (template and template.is_file() and reads_a_secret(template.read_text()))):
                yield f"{sls.relative_to(REPO)}:{sid}", body


def test_the_secret_file_states_are_found():
    found = dict(secret_file_states())
    # the known ones: TLS key copies, Patroni's config, the env file, HAProxy's and keepalived's configs, the cookie
    for expected in ("salt/etcd/init.sls:etcd-tls-key", "salt/haproxy/init.sls:haproxy-tls-pem",
                     "salt/logs/forward.sls:logs-rsyslog-tls-key", "salt/backup/common.sls:backup-tls-key", "salt/postgres/init.sls:postgres-patroni-config",
                     "salt/airflow/config.sls:airflow-admin-password", "salt/monitoring/grafana.sls:monitoring-grafana-admin-password",
                     "salt/airflow/config.sls:airflow-env", "salt/haproxy/init.sls:haproxy-config",
                     "salt/keepalived/init.sls:keepalived-config", "salt/rabbitmq/init.sls:rabbitmq-erlang-cookie",
                     # PgBouncer's auth file: a SCRAM verifier, hidden and kept from others like a password
                     "salt/airflow/pgbouncer.sls:airflow-pgbouncer-auth-file"):
        assert expected in found, sorted(found)


@pytest.mark.parametrize("where, body", list(secret_file_states()), ids=[w for w, _ in secret_file_states()])
def test_every_file_state_writing_a_secret_hides_its_diff_and_is_not_world_readable(where, body):
    assert re.search(r"^\s+- show_changes: False\s*$", body, re.M), \
        f"{where} writes a secret: add `- show_changes: False` (its diff would go to the job cache and the log)"
    mode = re.search(r"^\s+- mode: '?(\d+)'?", body, re.M)
    assert mode and int(mode.group(1), 8) & 0o007 == 0, f"{where}: mode 0600 or 0640 (service group)"
