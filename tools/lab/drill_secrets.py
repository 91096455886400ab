"""Secrets drill on the running lab: no secret where it must not be, and the
files that must hold one readable by their service only (docs/secrets.md).

    .venv/bin/python tools/lab/drill.py secrets

Every secret value of .secrets/airflow_ha_secrets.sls (passwords, keys;
public halves left out), every host's TLS key (read from the host that made
it, /etc/airflow-ha/pki/host.key: salt/pki) and the CA key
(.secrets/ca/ca.key) is searched for, as fixed strings (a PEM by
each line of its body) given to ``grep`` on its standard input, never on a
command line, and never printed (findings name the secret's pillar key):

- on the master: in the job cache (/var/cache/salt/master, the minion data
  cache ``pillar/`` left out: it holds the minions' pillar by design, its
  mode is checked) and in /var/log;
- on every host: in /var/log, /var/cache/salt, /tmp, /var/tmp, /root, /home,
  /srv (the master's repo mount and the wheelhouse left out) and Airflow's
  logs; no other host's TLS key, no CA key and no secret of a key that none
  of the host's roles uses (pillar/role_secrets.yaml, which pillar filters
  each host's secrets with) anywhere, /etc and /opt/airflow included; no repo
  mount (/srv/airflow-ha, with .secrets/) on a minion;
- the files that hold a secret in /etc, /opt/airflow, /var/lib/rabbitmq,
  Patroni's pgpass and Salt's own state caches on a minion
  (/var/cache/salt/minion/highstate.cache.p, sls.p: the compiled states'
  arguments) (found by their content, not by a list): no access for others,
  a private key and Salt's caches owner-only, a password file at most group-readable by a service group
  with no member users, owned by root or a system user;
- the directories of the master's job cache and logs: no access for others;
- on every host, in every process's arguments (/proc/N/cmdline, readable by
  all) and in the environment of every process of a login user (uid 1000 or
  above: anyone who gets that account reads it); a service's environment,
  readable by its own system user and root only, may hold its secrets;
- on this machine: .secrets/ and .lab/ 0700, the secrets files 0600.
"""

import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from _modules.ha_inventory import host_secrets, read_role_secrets  # noqa: E402  (the one map of role secrets)

SECRETS_DIR = REPO / ".secrets"
# where a service's files may hold a secret (their modes are checked); anywhere else a hit is a leak
HOLDING = ("/etc/", "/opt/airflow/", "/var/lib/rabbitmq/", "/var/lib/postgresql/", "/var/lib/pgsql/")
SCANNED = ["/etc", "/opt/airflow", "/var/lib/rabbitmq/.erlang.cookie", "/var/lib/postgresql/.pgpass_patroni",
           "/var/lib/pgsql/.pgpass_patroni", "/var/log", "/var/cache/salt", "/tmp", "/var/tmp", "/root", "/home"]
# dirs left out of the scan: big and secret-free (venvs, the wheelhouse, pip caches), or holding the
# minions' pillar by design (the master's minion data cache, whose mode is checked)
EXCLUDED_DIRS = ["venv", "site-packages", "wheels", ".cache", "__pycache__"]
# the master's minion data cache (Salt 3008: pillar/<id>.p; older: minions/<id>/data.p) holds every
# minion's pillar by design: hits there are not leaks, the directories' modes are checked
DATA_CACHES = ("/var/cache/salt/master/pillar/", "/var/cache/salt/master/minions/")
# Salt's own state caches on a minion (the compiled highstate with the states' arguments, e.g. a
# user's password, and the last run's return): root-only files (Salt writes them under umask 077)
SALT_STATE_CACHE = re.compile(r"^/var/cache/salt/minion/([\w.-]+\.cache\.p|sls\.p)$")
MASTER_DIRS = ["/var/cache/salt/master", "/var/cache/salt/master/jobs", "/var/cache/salt/master/pillar",
               "/var/cache/salt/master/minions", "/var/log/salt"]
SHARED_GROUPS = {"users", "adm", "staff", "sudo", "wheel", "vagrant", "nogroup"}
SHORTEST = 8  # a value shorter than this is not searched for (it would match by chance)
# the key each host makes for itself (salt/pki/map.jinja host_key); its services keep copies beside it
HOST_KEY = "/etc/airflow-ha/pki/host.key"


# ------------------------------------------------------------------ the secrets


def _leaves(tree, prefix):
    for key, value in (tree or {}).items():
        path = f"{prefix}:{key}"
        if isinstance(value, dict):
            yield from _leaves(value, path)
        elif value not in (None, "") and not isinstance(value, bool):
            yield path, str(value)


def secret_values(secrets_dir=SECRETS_DIR):
    """{label: value}: every secret of the secrets file (``secrets:...``; public keys left out) and the CA
    key (``the CA key``). The hosts' TLS keys are made on the hosts: :func:`host_keys`."""
    values = {}
    data = yaml.safe_load((Path(secrets_dir) / "airflow_ha_secrets.sls").read_text()) or {}
    for path, value in _leaves(data.get("secrets"), "secrets"):
        if not path.endswith("_public_key"):
            values[path] = value
    ca_key = Path(secrets_dir) / "ca" / "ca.key"
    if ca_key.exists():
        values["the CA key"] = ca_key.read_text()
    return values


def host_keys(hosts, execute, roots):
    """({``tls:key of HOST``: the key HOST made}, [hosts without one]): read from each host (kept in this
    process only, never printed), so the scan can tell a key on its own host from one off it."""
    keys, missing = {}, []
    for host in hosts:
        _, out, _ = execute(host, f"cat '{roots.get(host, '')}{HOST_KEY}' 2>/dev/null; exit 0")
        if "PRIVATE KEY-----" in out:
            keys[f"tls:key of {host}"] = out
        else:
            missing.append(host)
    return keys, missing


# the first body line of every unencrypted OpenSSH ed25519 key ("openssh-key-v1", no cipher, no KDF,
# one key, "ssh-ed25519"): the same in every host's own SSH host key, so it names no secret
OPENSSH_HEADER = "b3BlbnNzaC1rZXktdjE"


def patterns(values):
    """{fixed string: label}: a one-line value itself, a PEM (or any multi-line value) by each line of its
    body of 40 or more characters (a job return or a log may hold it with its newlines escaped), but a
    line that two values share, or OpenSSH's constant header line, identifies none of them."""
    found, shared = {}, set()
    for label, value in values.items():
        lines = value.strip().splitlines()
        if len(lines) > 1:
            for line in lines:
                line = line.strip()
                if len(line) >= 40 and not line.startswith(("-----", OPENSSH_HEADER)):
                    if found.get(line, label) != label:
                        shared.add(line)
                    found.setdefault(line, label)
        elif len(value) >= SHORTEST:
            found.setdefault(value, label)
    return {line: label for line, label in found.items() if line not in shared}


# ------------------------------------------------------------------ the scan (one grep per host)

SCAN = r"""
root='{root}'
paths=()
for p in {paths}; do [ -e "$root$p" ] && paths+=("$root$p"); done
for d in "$root"/srv/*; do
  case "${{d#$root}}" in /srv/airflow-ha|/srv/wheels|/srv/airflow-ha-lab) ;; *) [ -e "$d" ] && paths+=("$d") ;; esac
done
[ ${{#paths[@]}} -gt 0 ] || exit 0
grep -rHoaFZ {excludes} -f - -- "${{paths[@]}}" 2>/dev/null
exit 0
"""
STAT = r"""
while IFS= read -r -d '' f; do
  stat -c '%a %u %U %G' -- "$f" | tr '\n' ' '
  getent group "$(stat -c %G -- "$f")" | cut -d: -f4 | tr '\n' ' '
  printf '\t%s\n' "$f"
done
exit 0
"""


# every process's arguments, and the environment of the processes of login users (uid >= 1000), searched
# with the same fixed strings; the patterns stay in a shell variable (no file, no argument)
PROC_SCAN = r"""
root='{root}'
patterns=$(cat)
shopt -s nullglob
files=()
procs=0
for p in "$root"/proc/[0-9]*; do
  procs=$((procs + 1))
  files+=("$p/cmdline")
  uid=$(stat -c %u -- "$p" 2>/dev/null) || continue
  [ "$uid" -ge 1000 ] && files+=("$p/environ")
done
echo "processes $procs"
printf '%s\n' "$patterns" | grep -HoaFZ -f - -- "${{files[@]}}" 2>/dev/null
exit 0
"""
PROC_NAMES = r"""
for n in {pids}; do printf '%s %s %s\n' "$n" "$(stat -c %U -- '{root}'/proc/$n 2>/dev/null)" \
  "$(tr -d '\n' < '{root}'/proc/$n/comm 2>/dev/null)"; done
exit 0
"""
PROC_FILE = re.compile(r"^/proc/(\d+)/(cmdline|environ)$")


def process_leaks(host, hits, execute, root=""):
    """Findings for the hits of PROC_SCAN: each names the secret, the process (pid, user, command) and
    whether it was in the arguments or the environment."""
    procs = sorted({PROC_FILE.match(path).group(1) for path, _ in hits}, key=int)
    names = {}
    if procs:
        _, out, _ = execute(host, PROC_NAMES.format(pids=" ".join(procs), root=root))
        for line in out.splitlines():
            pid, _, rest = line.partition(" ")
            names[pid] = rest.strip()
    leaks = []
    for path, label in sorted(hits):
        pid, where = PROC_FILE.match(path).groups()
        place = "arguments" if where == "cmdline" else "environment"
        leaks.append(f"{host}: {label} in the {place} of process {pid} ({names.get(pid) or 'gone'}): "
                     "pass it in a file readable by that service only")
    return leaks


def scan_script(root=""):
    """The scan of one host; ``root``: where its file system is (a test's directory; "" in a container)."""
    excludes = " ".join(f"--exclude-dir={d}" for d in EXCLUDED_DIRS)
    return SCAN.format(root=root, paths=" ".join(SCANNED), excludes=excludes)


def parse_hits(output, pattern_labels, root=""):
    """{(file, label)} from ``grep -oZ``'s ``file NUL match`` lines (file without ``root``)."""
    hits = set()
    for line in output.splitlines():
        if "\0" not in line:
            continue
        path, match = line.split("\0", 1)
        label = pattern_labels.get(match)
        if label:
            hits.add((path[len(root):], label))
    return hits


def role_labels(inv, host, role_secrets=None):
    """The labels of the secrets ``host`` may hold: those of the keys its roles use (the map
    pillar/role_secrets.yaml, the site's optional ones included: what pillar gives the host)."""
    role_secrets = read_role_secrets() if role_secrets is None else role_secrets
    return {f"secrets:{path}" for path in host_secrets(inv, host, role_secrets, optional=True)}


def classify(host, hits, allowed=None, roles=()):
    """(leaks, held): a hit outside the holding dirs, of another host's TLS key or the CA key anywhere, or
    with ``allowed`` (:py:func:`role_labels`) of a secret the host's ``roles`` do not use anywhere, is a
    leak; the rest are a service's files holding its secrets {file: {labels}}."""
    leaks, held = [], {}
    for path, label in sorted(hits):
        if path.startswith(DATA_CACHES):
            continue
        foreign_key = label == "the CA key" or (label.startswith("tls:key of ") and label != f"tls:key of {host}")
        in_holding = (path.startswith(HOLDING) and not path.startswith("/opt/airflow/logs/")) \
            or bool(SALT_STATE_CACHE.match(path))
        not_its_role = allowed is not None and label.startswith("secrets:") and label not in allowed
        if foreign_key or not in_holding:
            leaks.append(f"{host}: {label} in {path}")
        elif not_its_role:
            leaks.append(f"{host}: {label} in {path}: none of its roles ({', '.join(roles) or 'none'}) uses it "
                         "(pillar/role_secrets.yaml)")
        else:
            held.setdefault(path, set()).add(label)
    return leaks, held


def mode_problems(host, path, labels, mode, uid, owner, group, members):
    """What is wrong with the mode/ownership of a file that holds ``labels``."""
    problems = []
    private_key = any(lb.startswith("tls:key") or lb.endswith("private_key") or lb == "the CA key" for lb in labels) \
        or bool(SALT_STATE_CACHE.match(path))
    where = f"{host}: {path} ({', '.join(sorted(labels))}; {mode:o} {owner}:{group})"
    if mode & 0o007:
        problems.append(f"{where} is readable by others: mode {mode & ~0o007:o} at most")
    if private_key and mode & 0o070:
        problems.append(f"{where} is a private key or Salt's state cache, readable by its group: 0600 (owner only)")
    elif mode & 0o070:
        extra = [m for m in members if m and m != owner]
        if group in SHARED_GROUPS or extra:
            problems.append(f"{where} is readable by group {group}"
                            + (f" whose members are {', '.join(extra)}" if extra else ", a shared group")
                            + ": a service's own group, with no member users, or 0600")
    if uid >= 1000:
        problems.append(f"{where} is owned by user {owner} (uid {uid}): root or the service's system user")
    return problems


def parse_stat(output):
    """[(path, mode, uid, owner, group, [members])] of the STAT script's lines."""
    rows = []
    for line in output.splitlines():
        if "\t" not in line:
            continue
        fields, path = line.split("\t", 1)
        parts = fields.split()
        if len(parts) < 4:
            continue
        members = parts[4].split(",") if len(parts) > 4 else []
        rows.append((path, int(parts[0], 8), int(parts[1]), parts[2], parts[3], members))
    return rows


# ------------------------------------------------------------------ the drill


def lxc_execute(host, script, stdin=""):
    """(returncode, stdout, stderr) of ``script`` in ``host``'s container, ``stdin`` on its standard input."""
    import drill as lab  # tools/lab/drill.py: the container of a host

    proc = subprocess.run(["lxc-attach", "-n", lab.container(host), "--", "bash", "-c", script], input=stdin,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def local_findings(repo=REPO):
    """This machine's copies: .secrets/ and .lab/ 0700, every file below .secrets/ 0600."""
    wrong = []
    for d in (repo / ".secrets", repo / ".lab"):
        if d.exists() and stat.S_IMODE(d.stat().st_mode) & 0o077:
            wrong.append(f"this machine: {d} is mode {stat.S_IMODE(d.stat().st_mode):o}: 0700 "
                         f"(`chmod 0700 {d}`; make secrets sets it for .secrets)")
    for f in sorted((repo / ".secrets").rglob("*")) if (repo / ".secrets").exists() else []:
        if f.suffix in (".crt", ".pub"):  # public halves (the CA certificate), inside the 0700 directory
            continue
        mode = stat.S_IMODE(f.stat().st_mode)
        if (f.is_file() and mode & 0o077) or (f.is_dir() and mode & 0o077):
            wrong.append(f"this machine: {f} is mode {mode:o}: {'0600' if f.is_file() else '0700'}")
    return wrong


def drill_secrets(inv, execute=None, secrets_dir=SECRETS_DIR, repo=REPO, roots=None, role_secrets=None):
    """The drill: raises AssertionError listing every finding; returns the figures. ``execute(host, script,
    stdin)`` runs a bash script on a host (default: in its container); ``roots``: {host: directory holding
    its file system} when the hosts are directories here (the unit test), else every path is the host's;
    ``role_secrets``: the map of which secrets each role's hosts hold (default pillar/role_secrets.yaml)."""
    execute = execute or lxc_execute
    roots = roots or {}
    role_secrets = read_role_secrets() if role_secrets is None else role_secrets
    values = secret_values(secrets_dir)
    hosts = list(inv["hosts"])
    keys, keyless = host_keys(hosts, execute, roots)
    values.update(keys)
    pattern_labels = patterns(values)
    stdin = "".join(p + "\n" for p in pattern_labels)
    master = hosts[0]
    findings = local_findings(repo)
    if "the CA key" in values:  # TLS is on: every host made its own key (salt/pki)
        findings += [f"{host}: no TLS key of its own at {HOST_KEY}" for host in keyless]
    held_files = keys_off_host = processes = 0
    for host in hosts:
        root = roots.get(host, "")
        rc, out, err = execute(host, PROC_SCAN.format(root=root), stdin)
        if rc:
            findings.append(f"{host}: the process scan failed ({rc}): {err.strip()[-300:]}")
        processes += sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("processes "))
        findings += process_leaks(host, parse_hits(out, pattern_labels, root), execute, root)
        rc, out, err = execute(host, scan_script(root), stdin)
        if rc:
            findings.append(f"{host}: the scan failed ({rc}): {err.strip()[-300:]}")
            continue
        leaks, held = classify(host, parse_hits(out, pattern_labels, root), role_labels(inv, host, role_secrets),
                               inv["hosts"][host].get("roles") or [])
        findings += leaks
        keys_off_host += sum(1 for leak in leaks if ": tls:key of " in leak or ": the CA key in " in leak)
        if held:
            listing = "".join(root + p + "\0" for p in held)
            _, out, _ = execute(host, STAT, listing)
            for path, mode, uid, owner, group, members in parse_stat(out):
                path = path[len(root):]
                findings += mode_problems(host, path, held[path], mode, uid, owner, group, members)
            held_files += len(held)
        rc, out, _ = execute(host, f"test -e '{root}/srv/airflow-ha' && echo repo; "
                                   f"test -e '{root}/srv/airflow-ha-lab/pki/master.pem' && echo master-key; exit 0")
        if host != master and "repo" in out.split():
            findings.append(f"{host}: the repo (with .secrets/) is mounted at /srv/airflow-ha on a minion: "
                            "recreate the container (the Vagrantfile mounts it on the master only)")
        if "master-key" in out.split():
            findings.append(f"{host}: the master's private key is in /srv/airflow-ha-lab/pki")
    root = roots.get(master, "")
    # others reach a directory only through ancestors they may traverse (o+x on every one): Salt makes
    # jobs/ 0755 itself, inside a 0700 cache directory
    chain = sorted({"/".join(d.split("/")[:i]) or "/" for d in MASTER_DIRS for i in range(2, d.count("/") + 2)})
    _, out, _ = execute(master, "for d in " + " ".join(f"'{root}{d}'" for d in chain)
                        + "; do [ -e \"$d\" ] && stat -c '%a %n' \"$d\"; done; exit 0")
    modes = {}
    for line in out.splitlines():
        mode, _, path = line.partition(" ")
        modes[path[len(root):]] = int(mode, 8)
    for path in MASTER_DIRS:
        if path not in modes:
            continue
        ancestors = [a for a in chain if path.startswith(a + "/")]
        if modes[path] & 0o007 and all(modes.get(a, 0o755) & 0o001 for a in ancestors):
            findings.append(f"{master}: {path} is mode {modes[path]:o} and reachable by others: 0700 (the "
                            "master's config in docs/secrets.md: pre-create it 0700, UMask=0077)")
    print(f"FIGURE drill secrets: {len(values)} secrets ({len(pattern_labels)} search strings) looked for on "
          f"{len(hosts)} hosts (the master's job cache and logs, every host's logs, caches, temp and home dirs, "
          f"other hosts' keys and other roles' secrets everywhere, {processes} process arguments and login users' "
          f"environments); {held_files} service files hold secrets; "
          f"{len(findings)} findings",
          flush=True)
    print(f"FIGURE drill secrets: {len(keys)} of {len(hosts)} hosts made their own TLS key; "
          f"keys found off their own host: {keys_off_host}", flush=True)
    assert not findings, "secrets where they must not be:\n  - " + "\n  - ".join(findings)
    return {"secrets": len(values), "search_strings": len(pattern_labels), "hosts": len(hosts),
            "service_files": held_files, "processes": processes, "host_keys": len(keys),
            "keys_off_host": keys_off_host, "findings": len(findings)}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill as _lab

    drill_secrets(_lab.inventory())
