#!/usr/bin/env python3
"""Process one card batch file: validate it, archive it, write the result.

    card-process-batch NAME [--base /srv/card]

NAME is a file in BASE/inbox. A batch is CSV with the header
`token,amount,currency`: a card token (16-64 letters/digits, never a PAN),
an amount with 2 decimals and an ISO 4217 code. A valid batch moves to
archive/ and BASE/outbox/NAME.result gets `ok <records> <total per currency>`;
an invalid one moves to failed/ with NAME.error beside it, and the exit code
is 2. Exit code 1: NAME is not in the inbox.
"""

import argparse
import csv
import decimal
import os
import re
import sys

TOKEN = re.compile(r"^[A-Za-z0-9]{16,64}$")
AMOUNT = re.compile(r"^\d{1,12}\.\d{2}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
PAN = re.compile(r"^\d{13,19}$")


def validate(path):
    totals, records = {}, 0
    with open(path, newline="") as f:
        rows = csv.reader(f)
        if next(rows, None) != ["token", "amount", "currency"]:
            raise ValueError("header must be token,amount,currency")
        for n, row in enumerate(rows, 2):
            if len(row) != 3:
                raise ValueError(f"line {n}: 3 fields expected")
            token, amount, currency = row
            if PAN.match(token):
                raise ValueError(f"line {n}: looks like a card number, tokens only")
            if not TOKEN.match(token) or not AMOUNT.match(amount) or not CURRENCY.match(currency):
                raise ValueError(f"line {n}: bad token, amount or currency")
            totals[currency] = totals.get(currency, decimal.Decimal(0)) + decimal.Decimal(amount)
            records += 1
    if not records:
        raise ValueError("empty batch")
    return records, totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--base", default="/srv/card")
    args = parser.parse_args(argv)
    name = os.path.basename(args.name)
    inbox = os.path.join(args.base, "inbox", name)
    if not os.path.isfile(inbox):
        print(f"{name}: not in {os.path.dirname(inbox)}", file=sys.stderr)
        return 1
    try:
        records, totals = validate(inbox)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        os.replace(inbox, os.path.join(args.base, "failed", name))
        with open(os.path.join(args.base, "failed", name + ".error"), "w") as f:
            f.write(f"{exc}\n")
        print(f"{name}: rejected: {exc}", file=sys.stderr)
        return 2
    os.replace(inbox, os.path.join(args.base, "archive", name))
    summary = " ".join(f"{c}={t}" for c, t in sorted(totals.items()))
    with open(os.path.join(args.base, "outbox", name + ".result"), "w") as f:
        f.write(f"ok {records} {summary}\n")
    print(f"{name}: ok {records} {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
