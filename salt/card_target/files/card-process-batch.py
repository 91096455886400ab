#!/usr/bin/env python3
"""Process one card batch file exactly once: validate it, archive it, write the result.

    card-process-batch NAME [--base /srv/card]

NAME is a file in BASE/inbox. A batch is CSV with the header
`token,amount,currency`: a card token (16-64 letters/digits, never a PAN),
an amount with 2 decimals and an ISO 4217 code, one record a line.

Exactly once: the batch's SHA-256 keys an idempotency ledger in BASE/ledger.
Under an exclusive flock of that hash (BASE/ledger/HASH.lock) the first run
writes BASE/ledger/HASH.json (atomically: temporary file, fsync, rename) -
that write is the commit - then BASE/outbox/NAME.result and moves the batch
to BASE/archive. Every later run of the same content under the same name
(a retry, a re-delivery, a concurrent run waiting on the lock) finds the
record, completes whatever a killed run left undone and returns the first
result without processing again. The same content under another name is a
duplicate and is rejected. BASE/ledger/names/NAME.json answers a repeat once
the inbox copy is gone.

A bad batch (malformed, empty, not UTF-8, or holding a PAN-like value: 13-19
digits passing the Luhn check) moves to BASE/failed with NAME.error beside
it. The error says what and where (line, field) and never echoes a value.

Output: one JSON object on stdout: name, status (ok | rejected), result or
error, sha256, processed_now (true only for the run that committed).
Exit codes: 0 ok (now or before), 2 rejected, 1 NAME in neither the inbox
nor the ledger.
"""

import argparse
import contextlib
import csv
import datetime
import decimal
import fcntl
import hashlib
import io
import json
import os
import re
import sys
import tempfile

HEADER = ["token", "amount", "currency"]
TOKEN = re.compile(r"^[A-Za-z0-9]{16,64}$")
AMOUNT = re.compile(r"^\d{1,12}\.\d{2}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
DIGIT_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class BatchError(ValueError):
    """What is wrong with a batch and where; never holds a value of the batch."""


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def pan_like(field):
    """True when ``field`` holds a run of 13-19 digits (spaces and dashes inside ignored) passing Luhn."""
    compact = re.sub(r"(?<=\d)[ -]+(?=\d)", "", field)
    return any(luhn_ok(run.group()) for run in DIGIT_RUN.finditer(compact))


def field_name(index):
    return HEADER[index] if index < len(HEADER) else f"{index + 1}"


def validate(data):
    """(records, {currency: Decimal total}) of a batch's bytes, or BatchError."""
    if not data.strip():
        raise BatchError("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BatchError(f"line {line}: not UTF-8 text") from None
    totals, records = {}, 0
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            n = reader.line_num
            for i, value in enumerate(row):
                if pan_like(value):
                    raise BatchError(f"line {n}, field {field_name(i)}: a PAN-like value (13-19 digits passing "
                                     f"the Luhn check); batches carry tokens only")
            if n == 1:
                if row != HEADER:
                    raise BatchError("line 1: the header must be token,amount,currency")
                continue
            if not row:
                raise BatchError(f"line {n}: empty line")
            if len(row) != 3:
                raise BatchError(f"line {n}: {len(row)} fields, 3 expected (token,amount,currency)")
            for i, (value, pattern) in enumerate(zip(row, (TOKEN, AMOUNT, CURRENCY))):
                if not pattern.match(value):
                    what = {0: "16-64 letters or digits", 1: "digits with 2 decimals",
                            2: "a 3-letter ISO 4217 code"}[i]
                    raise BatchError(f"line {n}, field {HEADER[i]}: not {what}")
            token, amount, currency = row
            totals[currency] = totals.get(currency, decimal.Decimal(0)) + decimal.Decimal(amount)
            records += 1
    except csv.Error as exc:
        raise BatchError(f"line {reader.line_num}: malformed CSV ({exc})") from None
    if not records:
        raise BatchError("no records after the header")
    return records, totals


def write_atomic(path, text):
    """Write ``text`` to ``path``: temporary file in the same folder, fsync, rename, fsync the folder."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def move(src, dst):
    """Rename ``src`` to ``dst`` if it is still there (a concurrent or earlier run may have moved it)."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, dst)


class Target:
    def __init__(self, base):
        self.base = base
        self.ledger = os.path.join(base, "ledger")
        self.names = os.path.join(self.ledger, "names")
        os.makedirs(self.names, exist_ok=True)

    def path(self, folder, name):
        return os.path.join(self.base, folder, name)

    @contextlib.contextmanager
    def locked(self, sha):
        with open(os.path.join(self.ledger, sha + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def complete(self, name, outcome):
        """Make the files agree with ``outcome`` (idempotent: a killed run's leftovers are finished)."""
        if outcome["status"] == "ok":
            result = self.path("outbox", name + ".result")
            if not os.path.exists(result):
                write_atomic(result, outcome["result"] + "\n")
            write_atomic(os.path.join(self.names, name + ".json"), json.dumps(outcome, sort_keys=True))
            move(self.path("inbox", name), self.path("archive", name))
        else:
            write_atomic(self.path("failed", name + ".error"), outcome["error"] + "\n")
            write_atomic(os.path.join(self.names, name + ".json"), json.dumps(outcome, sort_keys=True))
            move(self.path("inbox", name), self.path("failed", name))

    def process(self, name):
        """The outcome of batch ``name`` (a dict), processing it if no run did before."""
        try:
            with open(self.path("inbox", name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            outcome = read_json(os.path.join(self.names, name + ".json"))
            if outcome is None:
                return None
            self.complete(name, outcome)
            return dict(outcome, processed_now=False)
        sha = hashlib.sha256(data).hexdigest()
        with self.locked(sha):
            record = read_json(os.path.join(self.ledger, sha + ".json"))
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            if record is not None and record["name"] == name:
                outcome, processed_now = record, False
            elif record is not None:
                outcome, processed_now = {"name": name, "sha256": sha, "status": "rejected", "at": now,
                                          "error": f"duplicate: the same content was processed once already as "
                                                   f"batch {record['name']}"}, False
            else:
                outcome = {"name": name, "sha256": sha, "at": now}
                try:
                    if os.path.exists(self.path("archive", name)):
                        raise BatchError("a batch of this name with other content was processed already; "
                                         "upload it under a new name")
                    records, totals = validate(data)
                except BatchError as exc:
                    outcome.update(status="rejected", error=str(exc))
                    processed_now = False
                else:
                    summary = " ".join(f"{c}={t}" for c, t in sorted(totals.items()))
                    outcome.update(status="ok", records=records, totals={c: str(t) for c, t in totals.items()},
                                   result=f"ok {records} {summary}")
                    # the commit: from here on this content is processed, whatever happens to this run
                    write_atomic(os.path.join(self.ledger, sha + ".json"), json.dumps(outcome, sort_keys=True))
                    processed_now = True
            self.complete(name, outcome)
        return dict(outcome, processed_now=processed_now)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--base", default="/srv/card")
    args = parser.parse_args(argv)
    name = os.path.basename(args.name)
    if not NAME.match(name):
        print(json.dumps({"name": None, "status": "rejected",
                          "error": "a batch name is letters, digits, '.', '_', '-', not starting with '.'"}))
        return 2
    outcome = Target(args.base).process(name)
    if outcome is None:
        print(json.dumps({"name": name, "status": "missing",
                          "error": f"not in {os.path.join(args.base, 'inbox')} and not in the ledger"}))
        return 1
    print(json.dumps(outcome, sort_keys=True))
    return 0 if outcome["status"] == "ok" else 2


if __name__ == "__main__":
    sys.exit(main())
