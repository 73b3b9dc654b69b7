#!/usr/bin/env python3
"""Times proviso's usage queries over HTTP for bench/compare.sh (standard
library only): GET /v1/metrics/active for window=1 (DAU series) and
window=30 (trailing-30-day series), best of --runs each, on one keep-alive
connection. Then the one-day questions a dashboard asks, --latency-runs
times each for days drawn at random (seeded) from the range: one day's DAU
(window=1) and one day's trailing-30-day active subjects, p50/p99/max of
each. Then reads /healthz and the server's RSS (/proc/PID/status
VmRSS). Prints one JSON object on stdout.
"""

import argparse
import datetime as dt
import http.client
import json
import time
import urllib.parse


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True, help="analyst bearer token")
    parser.add_argument("--pid", type=int, required=True, help="server process id (for RSS)")
    parser.add_argument("--from", dest="first", default="2026-01-01")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--window", type=int, default=30, help="window of the MAU query")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    first = dt.date.fromisoformat(args.first)
    last = first + dt.timedelta(days=args.days - 1)
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    headers = {"Authorization": f"Bearer {args.token}"}

    def get(path, auth=True):
        conn.request("GET", path, headers=headers if auth else {})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
        return json.loads(body)

    def best(path):
        best_s = None
        body = None
        for _ in range(args.runs):
            started = time.perf_counter()
            body = get(path)
            elapsed = time.perf_counter() - started
            best_s = elapsed if best_s is None else min(best_s, elapsed)
        return best_s, body

    base = f"/v1/metrics/active?from={first}&to={last}"
    rss_before = rss_bytes(args.pid)
    dau_path = f"{base}&window=1"
    mau_path = f"{base}&window={args.window}"
    dau_s, dau = best(dau_path)
    mau_s, mau = best(mau_path)
    import random

    rng = random.Random(args.seed)

    def latencies(window):
        times = []
        for _ in range(args.latency_runs):
            day = first + dt.timedelta(days=rng.randrange(args.days))
            path = f"/v1/metrics/active?from={day}&to={day}&window={window}"
            started = time.perf_counter()
            get(path)
            times.append(time.perf_counter() - started)
        times.sort()
        pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 6)
        return {"runs": len(times), "p50_s": pick(0.50), "p99_s": pick(0.99), "max_s": round(times[-1], 6)}

    day_dau = latencies(1)
    day_mau = latencies(args.window)
    health = get("/healthz", auth=False)
    rss_after = rss_bytes(args.pid)
    conn.close()

    subjects = health.get("subjects") or 0
    out = {
        "dau_path": dau_path,
        "mau_path": mau_path,
        "runs": args.runs,
        "dau_s": round(dau_s, 5),
        "mau_s": round(mau_s, 5),
        "dau_sample": [point["active"] for point in dau["series"][:3]],
        "mau_sample": [point["active"] for point in mau["series"][:3]],
        "dau_series": dau["series"],
        "mau_series": mau["series"],
        "one_day_dau_latency": day_dau,
        "one_day_mau_latency": day_mau,
        "healthz": health,
        "rss_bytes_before_queries": rss_before,
        "rss_bytes": rss_after,
        "rss_bytes_per_subject": round(rss_after / subjects, 1) if subjects and rss_after else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
