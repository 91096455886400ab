# Managed by Salt (salt/airflow): edits are overwritten.
"""Admin users of the FAB auth manager (users live in the metadata DB): the
break-glass admin of both lines, which logs in without the directory.

    python airflow_ha_admin.py [--check] PASSWORDS_JSON

PASSWORDS_JSON (0600, from pillar) maps a user name to its password, as the
file of Airflow 3's simple auth manager does. Each user is created with the
Admin role, or gets the Admin role, its password and its active flag back when
they drifted. With --check no user changes: exit 0 when every user is as
wanted, 1 otherwise (the state's `unless`); like any Airflow 2 command that
starts the FAB app, it syncs FAB's own roles and permissions.

Run by the venv's python with the environment of the Airflow env file (the DB
URL): passwords never reach a command line, a log or the output.
"""

import json
import sys

ROLE = "Admin"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(args[0]) as f:
        passwords = json.load(f)

    from werkzeug.security import check_password_hash

    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    todo = []
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        role = sm.find_role(ROLE)
        if role is None:
            print(f"role {ROLE} missing: run `airflow db migrate` first", file=sys.stderr)
            return 1
        for username, password in sorted(passwords.items()):
            if not password:
                print(f"empty password for {username}: set secrets:airflow:admin_password", file=sys.stderr)
                return 1
            user = sm.find_user(username=username)
            if user is None:
                todo.append(f"create {username}")
                if not check and not sm.add_user(username, username, "admin", f"{username}@localhost", role,
                                                 password):
                    print(f"could not create {username}", file=sys.stderr)
                    return 1
                continue
            if role not in user.roles or not user.active:
                todo.append(f"set role {ROLE} and active on {username}")
                if not check:
                    if role not in user.roles:
                        user.roles.append(role)
                    user.active = True
                    sm.update_user(user)
            if not check_password_hash(user.password, password):
                todo.append(f"reset the password of {username}")
                if not check:
                    sm.reset_password(user.id, password)
    for item in todo:
        print(("would " if check else "") + item)
    return 1 if check and todo else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
