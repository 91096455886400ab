"""No secret ships with the repo: no well-known default password and no
secret-looking literal in the state tree, pillar or tools."""

import re

import pytest

from tests.helpers.inventory import REPO

import _modules.ha_inventory as ha_inventory

SCANNED = ["salt", "pillar", "_modules", "_states", "tools", "etc", "Saltfile", "Vagrantfile", "Makefile"]
# `password: <literal>` or `...pass=<literal>`-style assignments of a fixed value
# settings whose names look like secrets but whose values are not
NOT_SECRETS = {"password_encryption", "hash_password"}
LITERAL_PASSWORD = re.compile(r"""(?ix)(passw(or)?d|_pass|secret|cookie)\w*["']?\s*[:=]\s*["']?(?P<value>[A-Za-z0-9_@!\-]{3,})["']?\s*$""")


def scanned_files():
    for entry in SCANNED:
        path = REPO / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
        for f in files:
            if f.suffix in {".pyc"} or "__pycache__" in f.parts:
                continue
            yield f


# RabbitMQ's package ships the user guest/guest: the rabbitmq area names it to delete it.
MAY_NAME = {"guest": ("salt/rabbitmq/", "_modules/rabbitmq_ha.py", "_states/rabbitmq_ha.py")}


# refused as passwords, but ordinary words of the tree (user, service and package names)
ORDINARY_WORDS = {"admin", "password", "postgres", "airflow", "secret", "rabbitmq", "root", "test", "default",
                  "grafana", "haproxy"}


@pytest.mark.parametrize("password", sorted(ha_inventory.KNOWN_DEFAULT_PASSWORDS - ORDINARY_WORDS))
def test_no_seed_default_password_anywhere(password):
    pattern = re.compile(rf"(?<![\w]){re.escape(password)}(?![\w])")
    hits = [str(f.relative_to(REPO)) for f in scanned_files() if pattern.search(f.read_text(errors="ignore"))
            and f.name != "ha_inventory.py"]
    hits = [h for h in hits if not h.startswith(MAY_NAME.get(password, ()))]
    assert hits == []


def test_the_rabbitmq_state_deletes_the_packaged_guest_user():
    sls = (REPO / "salt" / "rabbitmq" / "init.sls").read_text()
    assert "rabbitmq_ha.user_absent:\n    - name: guest\n" in sls


def test_no_literal_password_assignment_in_states_or_pillar():
    hits = []
    for f in scanned_files():
        if f.name == "Makefile" or f.suffix not in {".sls", ".yaml", ".yml", ".jinja", ".j2", ".conf", ".cfg", ""}:
            continue
        for n, line in enumerate(f.read_text(errors="ignore").splitlines(), 1):
            m = LITERAL_PASSWORD.search(line.strip())
            if m and line.strip().split(":")[0].strip("- ") in NOT_SECRETS:
                continue
            if m and not line.lstrip().startswith("#") and "{{" not in line and m.group("value").lower() not in {"none", "null", "true", "false"}:
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == []
