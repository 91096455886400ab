#!/usr/bin/env python3
"""`patroni --validate-config FILE`, minus its complaint that a listen port is
in use: when a config is re-validated before a reload, that port is this
host's own running Patroni/PostgreSQL. Every other problem fails (exit 1)."""

import subprocess
import sys

IGNORED = ("is already in use",)

proc = subprocess.run(["patroni", "--validate-config", sys.argv[1]], capture_output=True, text=True)
problems = [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and not any(text in line for text in IGNORED)]
if proc.returncode and problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
