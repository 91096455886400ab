#!/usr/bin/python3
"""Search the central log host's files for card numbers (PAN) (issue 22).

    airflow-ha-pan-scan [DIR ...]      (default: /var/log/remote)

Walks every file under each DIR (or a FILE given by name), plain text and the
rotated .gz copies logrotate compresses, and prints one line per PAN-like
number, masked (PCI DSS allows the first 6 and the last 4 digits; the whole
number is never printed):

    /var/log/remote/af1/app.log:12: PAN-like number 411111…1111 (Visa)

then ``scanned N files, M lines: K PAN-like numbers``. Exit status: 0 none
found, 1 some found, 2 a usage error or a file that could not be read (the
scan is incomplete).

PAN-like: 13-19 digits, written together or in groups split by single spaces
or single dashes (one kind per number: 4111 1111 1111 1111,
4111-1111-1111-1111), not glued to a letter, another digit or a decimal
point (the fraction or whole part of a decimal number), that pass the
Luhn check AND start with the issuer prefix of a card scheme at a length that
scheme issues (SCHEMES). The card target (salt/card_target/files/
card-process-batch.py, pan_like) is stricter on purpose: any Luhn-valid 13-19
digit run in a batch is refused, since a batch field holds a token and
nothing else. Logs are full of long numbers (epoch micro- and nanoseconds,
Salt job ids, byte counts, ids); one in ten passes Luhn by chance, so Luhn
alone would drown a real finding in false ones. Prefix and length together
leave out most of them: epoch values start with 1, which no scheme uses,
dates with 20 (Mastercard's 2221-2720 at 16 digits only), and a Salt job id
has 20 digits. A random long id starting with 3 to 6 can still match: the
finding is then checked by hand. One source of such ids is known and left
out (KNOWN_IDS): etcd writes its request and lease ids in decimal, 19 digits
whose high ones come from the member's id, so all of a member's ids can carry
a scheme's prefix (the lab's db3: 6241..., UnionPay) and one in ten passes
Luhn.

Python 3 standard library only (runs with the log host's system python3:
3.9 on Rocky 9, 3.11 on Debian 12).
"""

import argparse
import gzip
import os
import re
import sys
import zlib

DEFAULT_DIR = "/var/log/remote"  # logs:remote_dir's default (salt/logs/defaults.yaml)
# (scheme, lowest prefix, highest prefix, lengths issued). Maestro is left out: its prefixes (50, 56-58, 6x)
# with lengths 12-19 would match almost any long number starting with 5 or 6.
SIXTEEN_TO_19 = range(16, 20)
SCHEMES = [
    ("Visa", "4", "4", (13, 16, 19)),
    ("Mastercard", "51", "55", (16,)),
    ("Mastercard", "2221", "2720", (16,)),
    ("Amex", "34", "34", (15,)),
    ("Amex", "37", "37", (15,)),
    ("Discover", "6011", "6011", SIXTEEN_TO_19),
    ("Discover", "644", "649", SIXTEEN_TO_19),
    ("Discover", "65", "65", SIXTEEN_TO_19),
    ("JCB", "3528", "3589", SIXTEEN_TO_19),
    ("Diners", "36", "36", range(14, 20)),
    ("Diners", "300", "305", range(14, 20)),
    ("Diners", "38", "39", range(14, 20)),
    ("UnionPay", "62", "62", SIXTEEN_TO_19),
]
# digit groups split by single spaces or dashes (ASCII digits only)
GROUPED = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
GROUP = re.compile(r"[0-9]+")
# at least 13 digits, spaces and dashes from digit to digit: where a PAN-like number can be (a fast
# search that skips most of a log line)
SPAN = re.compile(r"[0-9][0-9 -]{11,}[0-9]")


# (the program's tag in a syslog line, its log file's name, the ids in its lines): decimal ids that a program writes and
# that look like card numbers, blanked before the search. Only these exact fields: a number anywhere else
# in the same line is searched as usual.
KNOWN_IDS = [
    # etcd's slow-request warnings (`request "header:<ID:N ...> put:<key:... lease:N >" ... took too long`)
    # and raft's configuration changes (`switched to configuration voters=(N N N)`)
    (re.compile(r"\betcd\[[0-9]+\]"), re.compile(r"^etcd\b"),
     re.compile(r"<ID:[0-9]+|\blease:[0-9]+|\b(?:voters|learners)=\([0-9 ]*\)")),
]


def without_known_ids(line, name):
    """``line`` (of the file called ``name``) with the digits of KNOWN_IDS' fields blanked."""
    for tag, file_name, fields in KNOWN_IDS:
        if tag.search(line) or file_name.search(name):
            line = fields.sub(lambda m: re.sub("[0-9]", "#", m.group()), line)
    return line


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def scheme_of(digits):
    """The card scheme that issues ``digits`` (its prefix at its length), or None."""
    for name, low, high, lengths in SCHEMES:
        if len(digits) in lengths and low <= digits[:len(low)] <= high:
            return name
    return None


def find_pans(text):
    """[(start, digits, scheme)] of the PAN-like numbers in ``text``."""
    found = []
    for span in SPAN.finditer(text):
        for run in GROUPED.finditer(text, span.start(), span.end()):
            if len(run.group()) - run.group().count(" ") - run.group().count("-") >= 13:
                found += pans_in_run(text, run)
    return found


def glued(text, i, step):
    """Whether the character at ``i`` glues a digit run to more: a letter, or a decimal point with a digit
    beyond it (the fraction of 1764806400.348496123454389 or 0.3484961234543891 is no card number: the lab's
    logs are full of such floats, and one 15-16 digit fraction in ten passes Luhn)."""
    if not 0 <= i < len(text):
        return False
    if text[i].isalnum():
        return True
    beyond = i + step
    return text[i] == "." and 0 <= beyond < len(text) and text[beyond].isdigit()


def pans_in_run(text, run):
    """The PAN-like numbers of one run of digit groups: a group glued to a letter at either end is left out;
    from each group on, the longest stretch of whole groups (one kind of separator) with 13-19 digits that
    has a scheme's prefix and length and passes Luhn, the search going on after it."""
    groups = list(GROUP.finditer(text, run.start(), run.end()))
    if glued(text, run.start() - 1, -1):
        groups = groups[1:]
    if glued(text, run.end(), 1):
        groups = groups[:-1]
    found, i = [], 0
    while i < len(groups):
        hit = None
        for j in range(i, len(groups)):
            digits = "".join(g.group() for g in groups[i:j + 1])
            if len(digits) > 19:
                break
            if len(digits) < 13 or len({text[g.end()] for g in groups[i:j]}) > 1:
                continue  # too short, or spaces and dashes mixed
            scheme = scheme_of(digits)
            if scheme and luhn_ok(digits):
                hit = (j, digits, scheme)
        if hit:
            found.append((groups[i].start(), hit[1], hit[2]))
            i = hit[0] + 1
        else:
            i += 1
    return found


def mask(digits):
    return f"{digits[:6]}…{digits[-4:]}"


def scan_file(path, out=sys.stdout):
    """Print ``path``'s findings; (lines, findings, error or None). A file that cannot be read to its end (a
    .gz cut short) still reports what came before the error."""
    opener = gzip.open if path.endswith(".gz") else open
    name = os.path.basename(path)
    lines = findings = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                lines += 1
                for _start, digits, scheme in find_pans(without_known_ids(line, name)):
                    findings += 1
                    print(f"{path}:{lineno}: PAN-like number {mask(digits)} ({scheme})", file=out)
    except (OSError, EOFError, zlib.error) as e:  # EOFError, zlib.error: a truncated or corrupt .gz
        return lines, findings, e
    return lines, findings, None


def files_under(path):
    if os.path.isfile(path):
        yield path
        return
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            if os.path.isfile(os.path.join(root, name)):
                yield os.path.join(root, name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="airflow-ha-pan-scan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", metavar="DIR", default=[DEFAULT_DIR],
                        help=f"directories (or files) to search (default: {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    for path in args.dirs:
        if not os.path.exists(path):
            parser.error(f"{path}: no such file or directory")  # exits 2
    files = lines = findings = unreadable = 0
    for top in args.dirs:
        for path in files_under(top):
            n, k, error = scan_file(path)
            files, lines, findings = files + 1, lines + n, findings + k
            if error:
                print(f"airflow-ha-pan-scan: cannot read {path} (to its end): {error}", file=sys.stderr)
                unreadable += 1
    print(f"scanned {files} files, {lines} lines: {findings} PAN-like numbers")
    if findings:
        return 1
    return 2 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
