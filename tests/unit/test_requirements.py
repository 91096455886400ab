"""requirements/salt.txt is what a production master installs: it covers
every import of the custom modules and the master-side tools, and holds no
test package; requirements/test.txt includes it rather than repeating it."""

import ast
import sys

from tests.helpers.inventory import REPO

# import name -> the distribution salt.txt pins for it
RUNTIME = {"salt": "salt", "yaml": "PyYAML", "jinja2": "Jinja2", "cryptography": "cryptography"}
TEST_ONLY = {"pytest", "pytest-salt-factories", "python-vagrant", "celery", "kombu", "amqp", "vine"}
MASTER_TOOLS = ["tools/gen_secrets.py", "tools/gen_tls.py", "tools/roster.py"]


def pins(name):
    lines = (REPO / "requirements" / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def imported_top_levels(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_salt_txt_covers_every_runtime_import():
    files = [*sorted((REPO / "_modules").glob("*.py")), *sorted((REPO / "_states").glob("*.py")),
             *(REPO / f for f in MASTER_TOOLS)]
    local = {p.stem for p in (REPO / "tools").glob("*.py")} | {"_modules", "_states", "_utils"}
    pinned = {line.split("==")[0].lower() for line in pins("salt.txt")}
    for path in files:
        third_party = imported_top_levels(path) - set(sys.stdlib_module_names) - local
        missing = {name for name in third_party if RUNTIME.get(name, name).lower() not in pinned}
        assert not missing, f"{path.relative_to(REPO)} imports {sorted(missing)}, which requirements/salt.txt lacks"


def test_salt_txt_has_no_test_package_and_test_txt_includes_it():
    runtime = {line.split("==")[0] for line in pins("salt.txt")}
    assert not runtime & TEST_ONLY
    test = pins("test.txt")
    assert "-r salt.txt" in test
    assert not {line.split("==")[0] for line in test} & runtime, "test.txt repeats a pin of salt.txt"
