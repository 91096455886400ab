"""A secrets tree whose passwords hold every printable special character
their consumers must carry (issue 17): each password is the specials, a
space inside, and, where its consumers keep them, spaces at both ends; only
what a consumer cannot carry (ha_inventory.secret_character_problem) is left
out of that key. Every value passes the render's checks, so a render or a
real program that mangles one of them fails its test."""

import secrets as random
import string

import gen_secrets
from _modules.ha_inventory import secret_problem

# `%` (URL and configparser escapes), `@:/#?` (URL delimiters), quotes, `$` and
# backslash (shell, systemd, YAML), space, `,;&=+` (lists, query strings)...
SPECIALS = "%@:/#'\"$\\ ;,&?=+`!*{}[]<>|^~()-_."
# generated values of a fixed shape: kept as gen_secrets makes them
KEPT = ("rabbitmq:erlang_cookie", "airflow:fernet_key")
# consumers that cannot carry a character or a place: what is left out
WITHOUT = {
    "airflow:secret_key": "$",  # Airflow's expandvars
    "airflow:jwt_secret": "$",
    "airflow:flower_password": ",",  # Flower's user:password list
}
NO_EDGE_SPACE = ("rabbitmq:admin_password", "rabbitmq:airflow_password", "pgbackrest:cipher_pass")
# keepalived.conf: 8 characters at most, no space, quote, # ! $ \ { }
VRRP = "%@:/&?=+"


def _tag(length=12):
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(length))


def hostile_value(path):
    if path == "keepalived:auth_pass":
        return VRRP
    value = "".join(c for c in SPECIALS if c not in WITHOUT.get(path, "")) + _tag(40 if "jwt" in path else 12)
    return value if path in NO_EDGE_SPACE else f" {value} "


def hostile_secrets():
    """The tree under pillar `secrets`: gen_secrets' values (SSH keys, cookie,
    Fernet key) with every password replaced by its :py:func:`hostile_value`."""
    tree = {}
    gen_secrets.fill(tree)
    for path in gen_secrets.generators():
        if path in KEPT:
            continue
        group, key = path.split(":")
        tree[group][key] = hostile_value(path)
        problem = secret_problem(path, tree[group][key])
        assert problem is None, f"the hostile value of secrets:{path} {problem}"
    return tree
