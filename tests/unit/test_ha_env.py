"""The env files' one quoting rule and one parser (_utils/ha_env.py): a value
quoted by `quote` reads back the same through the parser (systemd's
EnvironmentFile rules) and through bash and dash sourcing the file (what
salt/airflow/migrate.sls does)."""

import string
import subprocess

import pytest

from _utils.ha_env import parse_env, quote

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
VALUES = [PRINTABLE, " both ends ", "ends with a backslash\\", "\\", '"', "'", "$HOME", "${HOME}", "`id`", "$(id)",
          "a\\nb", "\\$", "%d %% %(x)s", "", "a#b ;c", "~root"]


def sourced(shell, text, tmp_path, keys):
    path = tmp_path / "env"
    path.write_text(text)
    script = f"set -a; . {path}; " + " ".join(f'printf "%s\\0" "${k}";' for k in keys)
    out = subprocess.run([shell, "-c", script], capture_output=True, text=True, check=True, env={"HOME": "/root"})
    return out.stdout.split("\0")[:-1]


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_a_quoted_value_reads_back_the_same_in_the_parser_and_the_shell(shell, tmp_path):
    text = "".join(f"V{i}={quote(v)}\n" for i, v in enumerate(VALUES))
    keys = [f"V{i}" for i in range(len(VALUES))]
    assert parse_env(text) == dict(zip(keys, VALUES))
    assert sourced(shell, text, tmp_path, keys) == VALUES


def test_quote_refuses_a_newline_or_a_control_character():
    for value in ("a\nb", "a\rb", "tab\there", "bell\x07", "del\x7f"):
        with pytest.raises(ValueError, match="newline or another control character"):
            quote(value)
    assert quote(string.ascii_letters) == '"' + string.ascii_letters + '"'


def test_the_parser_reads_as_systemd_does():
    """systemd 252's rules (env-file.c), which a naive first-and-last-quote reader gets wrong."""
    text = ("# a comment\n; another\n"
            "SINGLE='a \"b\" \\c'\n"
            "DOUBLE=\"a \\\"b\\\" \\\\c \\x\"\n"
            "PLAIN=a\\ b  c   \n"
            "PIECES='a'\"b\"c\n"
            "  SPACED = 'v'  \n"
            "EMPTY=\n"
            "NOEQUALS\n"
            # a quote inside single quotes ends them; outside quotes a quote is a character
            "BROKEN=' it's'\n"
            # a quote left open takes the newline in
            "OPEN='runs\non'\n")
    assert parse_env(text) == {"SINGLE": 'a "b" \\c', "DOUBLE": 'a "b" \\c \\x', "PLAIN": "a b  c",
                               "PIECES": "abc", "SPACED": "v", "EMPTY": "", "BROKEN": " its'", "OPEN": "runs\non"}
