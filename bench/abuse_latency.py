#!/usr/bin/env python3
"""Abuse action latency for bench/abuse.sh (standard library only).

Against a running `proviso serve` with a partner configured for `security`,
plays --bursts fresh spammers, one at a time. For spammer K:

  a. the partner claims its account `bn-K` for the spammer's number
     (`partner_account`, partner token): a claim shares nothing;
  b. the service posts one NDJSON batch (ingest token): its attestation of
     the same link (`partner_account` naming the partner: the person linked
     the accounts in the app), the spammer's `register` at T, then 29 messages to 29 never-seen numbers, 500 ms
     apart in event time from T+60 s;
  c. t_send; the 30th message is posted alone; t_ack when its 200 arrives.
     That event fires the default `fresh_account_burst` rule (account < 1h,
     >= 30 messages in 1m, > 80% to non-contacts): ban + share;
  d. the partner polls GET /v1/partners/NAME/feeds/security?after=CURSOR
     until a record with partner_id == "bn-K" appears: t_seen (when that
     response arrived).

Reports p50/p99/max of t_seen - t_ack (how long after the server
acknowledged the event the partner can read the action) and t_seen - t_send
(end to end, including the request that carried the event), in ms. Every
request goes over a keep-alive connection (one for the service, one for the
partner). The partner polls as fast as it can (--poll-interval-ms between
polls, 0 by default), so the resolution is one feed round trip.

Event times: T = --base-ts + K * 1 h, so no two bursts share a window.
Numbers: spammers +91981KKKKKKK, recipients +91982RRRRRRR (valid Indian
mobiles, never produced by the simulator's other events in this form).

When --pid is given, also reports the CPU-seconds used by the server, by this
client, and by every other process during the bursts (from /proc), so a
noisy run is visible. Prints one JSON object on stdout.
"""

import argparse
import json
import sys
import time
import urllib.parse
import uuid

from benchlib import REQUEST_ERRORS, Client, Meter, read_feed, summary

def ndjson(events):
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:7420")
    parser.add_argument("--ingest-token", required=True)
    parser.add_argument("--partner", required=True, help="partner name from the config")
    parser.add_argument("--partner-token", required=True)
    parser.add_argument("--bursts", type=int, default=300, help="spammers, one at a time")
    parser.add_argument("--messages", type=int, default=30, help="messages per spammer (the last one fires)")
    parser.add_argument("--base-ts", type=int, default=1_772_323_200_000, help="event time of burst 0 (epoch ms)")
    parser.add_argument("--poll-interval-ms", type=float, default=0.0, help="sleep between feed polls")
    parser.add_argument("--deadline-s", type=float, default=10.0, help="give up on one burst after this long")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--pid", type=int, help="server pid, for CPU and RSS figures")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    service = Client(url, args.ingest_token, args.timeout)
    partner = Client(url, args.partner_token, args.timeout)
    feed_path = f"/v1/partners/{urllib.parse.quote(args.partner)}/feeds/security"
    errors = []

    run_id = uuid.uuid4().hex
    sent_batches = [0]

    def post_events(client, events, what):
        sent_batches[0] += 1
        key = f"{run_id}-{sent_batches[0]}"
        status, payload = client.request("POST", "/v1/events", ndjson(events), "application/x-ndjson", key)
        if status != 200:
            raise RuntimeError(f"{what}: HTTP {status} {payload[:300]!r}")
        result = json.loads(payload)
        if result.get("accepted") != len(events) or result.get("rejected"):
            raise RuntimeError(f"{what}: accepted {result.get('accepted')} of {len(events)}: {result.get('rejected')!r}")

    def feed(cursor):
        return read_feed(partner, feed_path, cursor)

    # Skip whatever the feed already holds.
    cursor = None
    preexisting = 0
    while True:
        records, next_cursor = feed(cursor)
        preexisting += len(records)
        if next_cursor == cursor:
            break
        cursor = next_cursor
    print(f"[latency] feed cursor {cursor} ({preexisting} earlier records)", file=sys.stderr, flush=True)

    ack_to_seen = []
    send_to_seen = []
    send_to_ack = []
    polls_per_burst = []
    missed = []
    unexpected = []
    sample = None
    first_phone = None
    recipient = 0

    meter = Meter(args.pid)
    for k in range(args.bursts):
        phone = f"+91981{k:07d}"
        first_phone = first_phone or phone
        account = f"bn-{k}"
        t0 = args.base_ts + k * 3_600_000
        try:
            post_events(
                partner,
                [{"type": "partner_account", "ts": t0, "phone": phone, "partner_id": account}],
                f"burst {k} partner_account",
            )
            batch = [
                {"type": "partner_account", "ts": t0, "phone": phone, "partner": args.partner, "partner_id": account},
                {"type": "register", "ts": t0, "phone": phone, "device": f"dev-{k}", "platform": "android"},
            ]
            for i in range(args.messages - 1):
                batch.append(
                    {"type": "message", "ts": t0 + 60_000 + i * 500, "phone": phone,
                     "to": f"+91982{recipient:07d}", "kind": "text"}
                )
                recipient += 1
            post_events(service, batch, f"burst {k} batch")
            last = [{"type": "message", "ts": t0 + 60_000 + (args.messages - 1) * 500, "phone": phone,
                     "to": f"+91982{recipient:07d}", "kind": "text"}]
            recipient += 1
            t_send = time.perf_counter()
            post_events(service, last, f"burst {k} last message")
            t_ack = time.perf_counter()
            polls = 0
            found = None
            while found is None:
                records, next_cursor = feed(cursor)
                polls += 1
                t_now = time.perf_counter()
                if next_cursor is not None:
                    cursor = next_cursor
                for record in records:
                    if record.get("partner_id") == account:
                        found = record
                    else:
                        unexpected.append(record)
                if found is not None:
                    break
                if t_now - t_ack > args.deadline_s:
                    break
                if args.poll_interval_ms > 0:
                    time.sleep(args.poll_interval_ms / 1000)
            polls_per_burst.append(polls)
            send_to_ack.append((t_ack - t_send) * 1000)
            if found is None:
                missed.append(k)
                continue
            if sample is None:
                sample = found
            ack_to_seen.append((t_now - t_ack) * 1000)
            send_to_seen.append((t_now - t_send) * 1000)
        except REQUEST_ERRORS as error:
            errors.append(f"burst {k}: {error}")
            if len(errors) >= 10:
                break
        if (k + 1) % 50 == 0:
            print(f"[latency] {k + 1}/{args.bursts} bursts", file=sys.stderr, flush=True)
    phase = meter.done()
    service.close()
    partner.close()

    out = {
        "bursts": args.bursts,
        "messages_per_burst": args.messages,
        "seen": len(ack_to_seen),
        "missed": len(missed),
        "missed_bursts": missed[:20],
        "errors": errors,
        "unexpected_feed_records": len(unexpected),
        "earlier_feed_records": preexisting,
        "sample_record": sample,
        "first_spammer_phone": first_phone,
        "ack_to_seen_ms": summary(ack_to_seen),
        "send_to_seen_ms": summary(send_to_seen),
        "send_to_ack_ms": summary(send_to_ack),
        "polls_per_burst": summary(polls_per_burst),
        "poll_interval_ms": args.poll_interval_ms,
        **phase,
    }
    print(json.dumps(out, indent=2))
    if errors or missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
