#!/usr/bin/env python3
"""Consent-gated partner output latency for bench/partner.sh (standard library only).

Against a running `proviso serve` whose first configured partner (--partner)
holds the simulator's `partner_account` links and may receive `product` and
`ads`, one client, one request at a time, over keep-alive loopback
connections (one per token):

  a. suggestions: GET /v1/partners/P/suggestions/{partner_id}?limit=L for
     --suggestions partner accounts drawn at random (seeded) from the
     distinct `partner_id`s of the workload's `partner_account` events.
     Also: share of non-empty answers, mean list length, status codes.
     Target p99 <= 5 ms. Then, untimed, up to --explain of the accounts
     with an empty answer are resolved and their product consent read
     (GET /v1/subjects/{s}/consent), to tell an asker who does not allow
     product sharing (empty by design) from one with no eligible contact.
  b. audience sizes: GET /v1/audiences/{business}?days=D (advertiser token)
     for --audiences businesses drawn at random (with replacement) from the
     workload's `business_message` events. Also: suppressed vs released,
     sizes per business. Target p99 <= 1 ms. Then (b2) --largest requests
     for the largest released audience alone (the cost grows with the
     audience; a random draw is mostly small businesses).
  c. retraction: for --retractions pairs (owner O, suggested S) from the
     non-empty answers of (a), with S distinct and neither O nor S refused
     earlier in this run (so the `add` of S to O is still live): S's phone
     (from the workload) is resolved with POST /v1/subjects/resolve
     (subject-service token, untimed); t0; PUT /v1/subjects/{s}/consent/product
     {"granted": false}; t_ack when its 200 arrives; then the product feed
     is read after the last known cursor (pages of 1000, back to back) until a
     `retract` record with suggested == S or partner_id == S appears: t_seen
     (when that page arrived). Reports t_ack - t0 and t_seen - t_ack.
     Target: t_seen - t_ack p99 <= 10 ms. Then, untimed, asks O's
     suggestions again and counts S if it is still there (must be 0).

Latencies are client-side: from just before the request is written to the
whole response body read (JSON parsing of the answer excluded), so they
include one loopback round trip and Python's HTTP handling: an upper bound
on the server's own time. requests/s is requests over the phase's wall time
(parsing and bookkeeping included). Every request's status is counted; a
phase stops after 20 errors.

With --pid, each phase also reports the CPU-seconds of the server, of this
client and of every other process (from /proc), and the server's VmRSS.
Prints one JSON object on stdout; progress on stderr.
"""

import argparse
import json
import random
import re
import sys
import time
import urllib.parse

from benchlib import REQUEST_ERRORS, Client, Meter, read_feed, vm_rss_bytes
from benchlib import summary as benchlib_summary

BUSINESS_RE = re.compile(r'"business":"([^"\\]*)"')


def summary(values):
    return benchlib_summary(values, percentiles=(50, 90, 99), count=True)


def read_workload(path):
    """partner_id -> (phone, country) of its linked person (last link wins;
    unlinked accounts dropped), and the distinct business ids."""
    accounts = {}
    businesses = set()
    partner_lines = 0
    business_lines = 0
    with open(path, "rb") as f:
        for raw in f:
            if b'"partner_account"' in raw:
                event = json.loads(raw)
                if event.get("type") != "partner_account":
                    continue
                partner_lines += 1
                if event.get("state", "linked") == "unlinked":
                    accounts.pop(event["partner_id"], None)
                else:
                    accounts[event["partner_id"]] = (event["phone"], event.get("country"))
            elif b'"business_message"' in raw:
                business_lines += 1
                match = BUSINESS_RE.search(raw.decode("utf-8", "replace"))
                if match:
                    businesses.add(match.group(1))
    return accounts, sorted(businesses), partner_lines, business_lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:7420")
    parser.add_argument("--events", required=True, help="the workload NDJSON file that was ingested")
    parser.add_argument("--partner", required=True, help="partner name (the first configured partner)")
    parser.add_argument("--partner-token", required=True)
    parser.add_argument("--advertiser-token", required=True)
    parser.add_argument("--subject-token", required=True, help="subject-service token")
    parser.add_argument("--suggestions", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=20, help="suggestions per request")
    parser.add_argument("--explain", type=int, default=100, help="empty suggestion answers to explain (untimed)")
    parser.add_argument("--audiences", type=int, default=2000)
    parser.add_argument("--audience-days", type=int, default=90)
    parser.add_argument("--largest", type=int, default=500, help="requests for the largest released audience (0: none)")
    parser.add_argument("--retractions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3, help="seed of the random choices")
    parser.add_argument("--deadline-s", type=float, default=10.0, help="give up on one retraction after this long")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--pid", type=int, help="server pid, for CPU and RSS figures")
    args = parser.parse_args()

    def log(message):
        print(f"[partner] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    accounts, businesses, partner_lines, business_lines = read_workload(args.events)
    log(f"workload: {len(accounts):,} linked partner accounts ({partner_lines:,} partner_account lines), "
        f"{len(businesses):,} businesses ({business_lines:,} business_message lines), "
        f"read in {time.perf_counter() - started:.1f}s")
    if not accounts or not businesses:
        raise SystemExit("the workload holds no partner accounts or no businesses")

    rng = random.Random(args.seed)
    url = urllib.parse.urlsplit(args.url)
    partner = Client(url, args.partner_token, args.timeout)
    advertiser = Client(url, args.advertiser_token, args.timeout)
    subjects = Client(url, args.subject_token, args.timeout)
    quoted = urllib.parse.quote(args.partner, safe="")
    rss_before = vm_rss_bytes(args.pid) if args.pid else None
    out = {
        "linked_partner_accounts": len(accounts),
        "partner_account_lines": partner_lines,
        "businesses": len(businesses),
        "business_message_lines": business_lines,
        "seed": args.seed,
        "server_rss_bytes_before": rss_before,
    }

    # a. Suggestions.
    ids = sorted(accounts)
    chosen = rng.sample(ids, args.suggestions) if args.suggestions <= len(ids) else rng.choices(ids, k=args.suggestions)
    latencies = []
    by_outcome = {"non_empty": [], "empty": []}
    statuses = {}
    lengths = []
    answered = {}  # owner -> suggested ids, in rank order (non-empty answers only)
    errors = []
    meter = Meter(args.pid)
    for i, account in enumerate(chosen):
        path = f"/v1/partners/{quoted}/suggestions/{urllib.parse.quote(account, safe='')}?limit={args.limit}"
        t0 = time.perf_counter()
        status, payload = partner.request("GET", path)
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            items = json.loads(payload)
            lengths.append(len(items))
            by_outcome["non_empty" if items else "empty"].append(latencies[-1])
            if items:
                answered[account] = [item["partner_id"] for item in items]
        elif status != 404:
            errors.append(f"GET {path}: HTTP {status} {payload[:200]!r}")
            if len(errors) >= 20:
                break
        if (i + 1) % 500 == 0:
            log(f"suggestions {i + 1}/{len(chosen)}")
    phase = meter.done()
    # Untimed: why answers were empty. For up to --explain empty answers, the
    # asker's own product consent (an empty list is also the answer to an
    # asker who does not allow product sharing, so that it reveals nothing).
    empty = [account for account in dict.fromkeys(chosen[: len(latencies)]) if account not in answered]
    why_empty = {}
    for account in empty[: args.explain]:
        phone, country = accounts[account]
        body = {"phone": phone, **({"country": country} if country else {})}
        status, payload = subjects.request("POST", "/v1/subjects/resolve", json.dumps(body).encode())
        if status != 200:
            key = f"resolve HTTP {status}"
        else:
            subject = json.loads(payload)["subject"]
            status, payload = subjects.request("GET", f"/v1/subjects/{subject}/consent")
            if status != 200:
                key = f"consent HTTP {status}"
            else:
                view = json.loads(payload)
                product = view["purposes"]["product"]
                key = f"asker product {product['state']} ({product['basis']})"
                if product["state"] == "granted":
                    key = "asker allows product: no eligible contact on the partner"
        why_empty[key] = why_empty.get(key, 0) + 1
    out["suggestions"] = {
        "requests": len(latencies),
        "limit": args.limit,
        "latency_ms": summary(latencies),
        "latency_ms_non_empty": summary(by_outcome["non_empty"]),
        "latency_ms_empty": summary(by_outcome["empty"]),
        "requests_per_second": round(len(latencies) / phase["wall_s"], 1) if phase["wall_s"] else None,
        "status": statuses,
        "non_empty": len(answered),
        "non_empty_share": round(len(answered) / len(latencies), 4) if latencies else None,
        "mean_length": round(sum(lengths) / len(latencies), 2) if latencies else None,
        "mean_length_of_200s": round(sum(lengths) / len(lengths), 2) if lengths else None,
        "full_lists": sum(1 for n in lengths if n == args.limit),
        "empty_explained": why_empty,
        "empty_explained_of": min(len(empty), args.explain),
        "target_p99_ms": 5.0,
        "errors": errors,
        **phase,
    }
    log(f"suggestions: p50 {out['suggestions']['latency_ms']['p50']} ms, p99 {out['suggestions']['latency_ms']['p99']} ms, "
        f"{len(answered)}/{len(latencies)} non-empty")

    # b. Audience sizes.
    chosen = [rng.choice(businesses) for _ in range(args.audiences)]
    latencies = []
    statuses = {}
    suppressed = released = 0
    by_outcome = {"released": [], "suppressed": []}
    sizes = {}
    errors = []
    meter = Meter(args.pid)
    for i, business in enumerate(chosen):
        path = f"/v1/audiences/{urllib.parse.quote(business, safe='')}?days={args.audience_days}"
        t0 = time.perf_counter()
        status, payload = advertiser.request("GET", path)
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            answer = json.loads(payload)
            if answer["suppressed"]:
                suppressed += 1
            else:
                released += 1
            by_outcome["suppressed" if answer["suppressed"] else "released"].append(latencies[-1])
            sizes[business] = answer["size"]
        else:
            errors.append(f"GET {path}: HTTP {status} {payload[:200]!r}")
            if len(errors) >= 20:
                break
        if (i + 1) % 500 == 0:
            log(f"audiences {i + 1}/{len(chosen)}")
    phase = meter.done()
    by_size = sorted(((b, n) for b, n in sizes.items() if n is not None), key=lambda kv: (-kv[1], kv[0]))
    out["audiences"] = {
        "requests": len(latencies),
        "days": args.audience_days,
        "latency_ms": summary(latencies),
        "latency_ms_released": summary(by_outcome["released"]),
        "latency_ms_suppressed": summary(by_outcome["suppressed"]),
        "requests_per_second": round(len(latencies) / phase["wall_s"], 1) if phase["wall_s"] else None,
        "status": statuses,
        "suppressed": suppressed,
        "released": released,
        "businesses_asked": len(sizes),
        "businesses_released": sum(1 for size in sizes.values() if size is not None),
        "largest": dict(by_size[:5]),
        "smallest_released": dict(by_size[-3:]),
        "suppressed_sample": sorted(b for b, size in sizes.items() if size is None)[:5],
        "target_p99_ms": 1.0,
        "errors": errors,
        **phase,
    }
    log(f"audiences: p50 {out['audiences']['latency_ms']['p50']} ms, p99 {out['audiences']['latency_ms']['p99']} ms, "
        f"{released} released, {suppressed} suppressed")

    # b2. The largest released audience alone: the size query's cost grows
    # with the audience (every member goes through the consent gate), and
    # random businesses are mostly small.
    out["audience_largest"] = None
    if by_size and args.largest > 0:
        business = by_size[0][0]
        path = f"/v1/audiences/{urllib.parse.quote(business, safe='')}?days={args.audience_days}"
        latencies = []
        errors = []
        meter = Meter(args.pid)
        for _ in range(args.largest):
            t0 = time.perf_counter()
            status, payload = advertiser.request("GET", path)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                errors.append(f"GET {path}: HTTP {status} {payload[:200]!r}")
                if len(errors) >= 20:
                    break
        phase = meter.done()
        out["audience_largest"] = {
            "business": business,
            "size": by_size[0][1],
            "requests": len(latencies),
            "latency_ms": summary(latencies),
            "requests_per_second": round(len(latencies) / phase["wall_s"], 1) if phase["wall_s"] else None,
            "errors": errors,
            **phase,
        }
        log(f"largest audience {business} ({by_size[0][1]}): p50 {out['audience_largest']['latency_ms']['p50']} ms, "
            f"p99 {out['audience_largest']['latency_ms']['p99']} ms")

    # c. Retraction latency.
    feed_path = f"/v1/partners/{quoted}/feeds/product"

    def feed(cursor):
        return read_feed(partner, feed_path, cursor)

    cursor = None
    earlier = {"add": 0, "retract": 0}
    # A retract names nobody (nor does its add, once withdrawn): it is
    # matched by the cursor of the add, noted here while the add was live.
    adds_naming = {}

    def note_adds(records):
        for record in records:
            if record["op"] == "add":
                for account in (record.get("suggested"), record.get("partner_id")):
                    if account:
                        adds_naming.setdefault(account, set()).add(record["cursor"])

    meter = Meter(args.pid)
    catch_up_started = time.perf_counter()
    catch_up_pages = 0
    while True:
        records, next_cursor = feed(cursor)
        catch_up_pages += 1
        note_adds(records)
        for record in records:
            earlier[record["op"]] = earlier.get(record["op"], 0) + 1
        if not records or next_cursor == cursor:
            break
        cursor = next_cursor
    catch_up_s = time.perf_counter() - catch_up_started
    log(f"product feed: cursor {cursor}, {earlier} records before the refusals, read in {catch_up_s:.2f}s")

    owners = sorted(answered)
    rng.shuffle(owners)
    refused = set()
    targets = []
    for owner in owners:
        if len(targets) == args.retractions:
            break
        if owner in refused:
            continue
        for suggested in answered[owner]:
            if suggested not in refused and suggested in accounts and suggested != owner:
                targets.append((owner, suggested))
                refused.add(suggested)
                break
    ack_to_seen = []
    send_to_ack = []
    resolve_ms = []
    polls = []
    retracts_per_refusal = []
    reasons = {}
    missed = []
    still_suggested = 0
    sample = None
    errors = []
    for k, (owner, suggested) in enumerate(targets):
        try:
            phone, country = accounts[suggested]
            body = {"phone": phone}
            if country:
                body["country"] = country
            t0 = time.perf_counter()
            status, payload = subjects.request("POST", "/v1/subjects/resolve", json.dumps(body).encode())
            resolve_ms.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"resolve {suggested}: HTTP {status} {payload[:200]!r}")
            subject = json.loads(payload)["subject"]
            path = f"/v1/subjects/{subject}/consent/product"
            body = json.dumps({"granted": False}).encode()
            t0 = time.perf_counter()
            status, payload = subjects.request("PUT", path, body)
            t_ack = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"PUT {path}: HTTP {status} {payload[:200]!r}")
            send_to_ack.append((t_ack - t0) * 1000)
            found = None
            t_found = None
            n_polls = 0
            n_retracts = 0
            while True:
                records, next_cursor = feed(cursor)
                t_now = time.perf_counter()
                n_polls += 1
                if next_cursor is not None:
                    cursor = next_cursor
                note_adds(records)
                for record in records:
                    if record["op"] == "retract":
                        n_retracts += 1
                        reasons[record.get("reason")] = reasons.get(record.get("reason"), 0) + 1
                        if found is None and record.get("retracts") in adds_naming.get(suggested, ()):
                            found = record
                            t_found = t_now
                if found is not None and len(records) < 1000:
                    break
                if found is None and t_now - t_ack > args.deadline_s:
                    break
            polls.append(n_polls)
            retracts_per_refusal.append(n_retracts)
            if found is None:
                missed.append(suggested)
            else:
                sample = sample or found
                ack_to_seen.append((t_found - t_ack) * 1000)
            # Untimed check: the refused person is no longer suggested.
            status, payload = partner.request(
                "GET", f"/v1/partners/{quoted}/suggestions/{urllib.parse.quote(owner, safe='')}?limit={args.limit}"
            )
            if status == 200 and any(item["partner_id"] == suggested for item in json.loads(payload)):
                still_suggested += 1
            # Those suggestion calls add records too: note them, skip them.
            while True:
                records, next_cursor = feed(cursor)
                note_adds(records)
                if not records or next_cursor == cursor:
                    break
                cursor = next_cursor
        except REQUEST_ERRORS as error:
            errors.append(f"retraction {k} ({suggested}): {error}")
            if len(errors) >= 20:
                break
        if (k + 1) % 100 == 0:
            log(f"retractions {k + 1}/{len(targets)}")
    phase = meter.done()
    out["retractions"] = {
        "asked": args.retractions,
        "pairs_available": len(targets),
        "seen": len(ack_to_seen),
        "missed": len(missed),
        "missed_accounts": missed[:10],
        "still_suggested_after_refusal": still_suggested,
        "ack_to_seen_ms": summary(ack_to_seen),
        "send_to_ack_ms": summary(send_to_ack),
        "resolve_ms": summary(resolve_ms),
        "polls_per_refusal": summary(polls),
        "retracts_per_refusal": summary(retracts_per_refusal),
        "retract_reasons": reasons,
        "feed_records_before": earlier,
        "feed_catch_up_s": round(catch_up_s, 3),
        "feed_catch_up_pages": catch_up_pages,
        "sample_record": sample,
        "target_ack_to_seen_p99_ms": 10.0,
        "errors": errors,
        **phase,
    }
    log(f"retractions: {len(ack_to_seen)} seen, {len(missed)} missed; ack->seen p99 "
        f"{out['retractions']['ack_to_seen_ms']['p99']} ms")

    out["server_rss_bytes_after"] = vm_rss_bytes(args.pid) if args.pid else None
    out["reconnects"] = partner.reconnects + advertiser.reconnects + subjects.reconnects
    for client in (partner, advertiser, subjects):
        client.close()
    print(json.dumps(out, indent=2))
    failed = (out["suggestions"]["errors"] or out["audiences"]["errors"]
              or (out["audience_largest"] or {}).get("errors") or errors or missed)
    if failed or still_suggested:
        sys.exit(1)


if __name__ == "__main__":
    main()
