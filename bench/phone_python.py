#!/usr/bin/env python3
"""Holds proviso's phone answers against Python's `phonenumbers`.

Input: the NDJSON of `proviso bench phone-agreement --dump FILE` (synthetic
numbers of every region, each with proviso's answer: parsed, valid, region,
E.164; proviso's matcher agrees exactly with the Rust `phonenumber` crate,
which the same command checks). Python's `phonenumbers` carries newer
libphonenumber metadata than the crate, so where the two disagree the
difference is mostly metadata age; this script counts and shows them.

For each number: `phonenumbers.parse(written, hint)`, then
`is_valid_number`, `region_code_for_number` and `format_number(E164)`.
Prints a JSON report: how many numbers, how many each side parsed, and the
disagreements by kind (parse, validity either way, region, E.164), by
proviso's or Python's region, and the first examples of each kind.

Usage (installs `phonenumbers` into bench/.venv when it is missing):

    target/release/proviso bench phone-agreement --numbers 1000000 --dump bench/out/phone-answers.ndjson
    bench/.venv/bin/python bench/phone_python.py bench/out/phone-answers.ndjson > bench/out/phone-python.json
"""

import argparse
import collections
import json
import sys

PHONENUMBERS_VERSION = "9.0.43"

try:
    import phonenumbers
except ImportError:  # pragma: no cover - set-up path
    sys.exit(
        "phonenumbers is not installed: "
        f"bench/.venv/bin/pip install phonenumbers=={PHONENUMBERS_VERSION}, "
        "then run this with bench/.venv/bin/python"
    )


def python_answer(written, hint):
    """(parsed, e164 or None, region or None) as Python's phonenumbers answers."""
    try:
        number = phonenumbers.parse(written, hint)
    except phonenumbers.NumberParseException:
        return False, None, None
    if not phonenumbers.is_valid_number(number):
        return True, None, None
    region = phonenumbers.region_code_for_number(number)
    if region == "001":
        region = "ZZ"  # proviso's region for non-geographic numbers
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return True, e164, region


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", help="NDJSON from `proviso bench phone-agreement --dump`")
    parser.add_argument("--examples", type=int, default=5, help="examples kept per kind of disagreement")
    args = parser.parse_args()

    kinds = collections.Counter()
    by_region = collections.Counter()
    examples = collections.defaultdict(list)
    totals = collections.Counter()
    with open(args.dump, encoding="utf-8") as lines:
        for line in lines:
            ours = json.loads(line)
            totals["numbers"] += 1
            parsed, e164, region = python_answer(ours["written"], ours["hint"])
            totals["proviso_parsed"] += ours["parsed"]
            totals["python_parsed"] += parsed
            totals["proviso_valid"] += ours["valid"]
            totals["python_valid"] += e164 is not None
            if not ours["parsed"] or not parsed:
                kind = None if ours["parsed"] == parsed else (
                    "parsed only by proviso" if ours["parsed"] else "parsed only by python")
            elif ours["valid"] and e164 is None:
                kind = "valid only for proviso"
            elif not ours["valid"] and e164 is not None:
                kind = "valid only for python"
            elif ours["valid"] and ours["e164"] != e164:
                kind = "different E.164"
            elif ours["valid"] and ours["region"] != region:
                kind = "different region"
            else:
                kind = None
            if kind is None:
                continue
            totals["disagreements"] += 1
            kinds[kind] += 1
            by_region[ours["region"] or region or ours["hint"] or "?"] += 1
            if len(examples[kind]) < args.examples:
                examples[kind].append({
                    "written": ours["written"],
                    "hint": ours["hint"],
                    "proviso": {"valid": ours["valid"], "region": ours["region"], "e164": ours["e164"]},
                    "python": {"parsed": parsed, "region": region, "e164": e164},
                })
    both_parsed = min(totals["proviso_parsed"], totals["python_parsed"])
    report = {
        "phonenumbers_version": phonenumbers.__version__,
        **totals,
        "disagreement_share_of_numbers": totals["disagreements"] / max(totals["numbers"], 1),
        "disagreements_by_kind": dict(kinds.most_common()),
        "disagreements_by_region_top20": dict(by_region.most_common(20)),
        "regions_with_disagreements": len(by_region),
        "examples": examples,
        "note": "proviso's answers equal the Rust phonenumber crate's (checked by the same command); "
                f"at least {both_parsed} numbers were parsed by both",
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
