"""
Writing and reading a systemd ``EnvironmentFile`` (``KEY=value`` lines), as
the Airflow units' ``/etc/default/airflow``: the one quoting rule of the
states' env files and the one parser of the custom modules that run
Airflow's CLI with its environment.

Synced to minions with the modules; modules call it as
``__utils__["ha_env.read_env_file"]``. Tests and tools may import
``_utils.ha_env``.
"""

# Inside double quotes systemd (>= 240: Debian 12 and Rocky 9 have 252) and a
# POSIX shell both take a backslash before these as the character itself and
# keep any other backslash; neither expands anything else there (systemd
# expands nothing in an env file; these are the shell's specials).
_ESCAPED = '"\\`$'
_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"


def quote(value):
    """``value`` double-quoted for an env file read by systemd and sourced by a
    shell alike; ValueError for a value with a newline or another control
    character (no env file line can carry it)."""
    value = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("an env file value cannot hold a newline or another control character")
    return '"' + "".join("\\" + c if c in _ESCAPED else c for c in value) + '"'


def parse_env(text):
    """
    The variables an env file's ``text`` sets, as a dict, read as systemd
    reads an ``EnvironmentFile`` (parse_env_file_internal, systemd 252's
    env-file.c): ``#``/``;`` comment lines; a value unquoted (a backslash
    takes the next character as is, trailing whitespace dropped), in single
    quotes (literal) or in double quotes (:py:func:`quote`'s escapes, any other
    backslash kept), its pieces concatenated; a quote left open runs on to the
    next line.
    """
    env, key, value, state, trailing = {}, [], [], "pre_key", None

    def push():
        text = "".join(value)
        env["".join(key).rstrip(_WHITESPACE)] = text[:trailing] if state == "value" and trailing is not None else text

    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in _WHITESPACE:
                state, key = "key", [c]
        elif state == "comment":
            if c in _NEWLINE:
                state = "pre_key"
        elif state == "key":
            if c in _NEWLINE:
                state = "pre_key"
            elif c == "=":
                state, value, trailing = "pre_value", [], None
            else:
                key.append(c)
        elif state in ("pre_value", "value") and c in _NEWLINE:
            push()
            state = "pre_key"
        elif state == "pre_value":
            if c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "escape"
            elif c not in _WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c == "\\":
                state, trailing = "escape", None
            else:
                if c not in _WHITESPACE:
                    trailing = None
                elif trailing is None:
                    trailing = len(value)
                value.append(c)
        elif state == "escape":
            state = "value"
            if c not in _NEWLINE:
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in _ESCAPED:
                value.append(c)
            elif c != "\n":
                value += ["\\", c]
    if state not in ("pre_key", "key", "comment"):
        push()
    return env


def read_env_file(path):
    """The variables the env file ``path`` sets (:py:func:`parse_env`)."""
    with open(path) as f:
        return parse_env(f.read())
