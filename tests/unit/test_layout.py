"""No import loop between tools/ and tests/: the tools (drills, render,
secrets, the shared clusters of tools/clusters) never import the tests;
the tests import the tools."""

import ast

import pytest

from tests.helpers.inventory import REPO

TOOLS = sorted(str(p.relative_to(REPO)) for p in (REPO / "tools").rglob("*.py"))


@pytest.mark.parametrize("path", TOOLS)
def test_tools_do_not_import_the_tests(path):
    tree = ast.parse((REPO / path).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    assert not [m for m in imported if m == "tests" or m.startswith("tests.")], f"{path} imports the tests"


def test_shared_cluster_code_lives_in_tools_clusters():
    for name in ("patroni_cluster.py", "rabbitmq_cluster.py", "tls_material.py"):
        assert not (REPO / "tests" / "helpers" / name).exists(), f"tests/helpers/{name}: move it to tools/clusters/"
    assert {"patroni.py", "rabbitmq.py", "haproxy.py", "tls_material.py", "state_render.py", "templates.py"} <= \
        {p.name for p in (REPO / "tools" / "clusters").glob("*.py")}
