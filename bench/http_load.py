#!/usr/bin/env python3
"""Batched HTTP ingest load for bench/compare.sh (standard library only).

Reads the first --max-lines lines of an NDJSON file into memory (so disk
reads are not timed), cuts them into batches of --batch lines, and POSTs them
to /v1/events over --connections persistent keep-alive connections, one
thread each. Every batch carries an Idempotency-Key (this run's id and the
batch number), so a batch whose request failed without an answer is resent
(up to --retries times) and never counted twice. Wall time runs from the
first send to the last response; client_cpu_s is this process's own CPU over
the same span. Prints one JSON object on stdout.
"""

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse
import uuid


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:7420")
    parser.add_argument("--token", required=True, help="ingest bearer token")
    parser.add_argument("--batch", type=int, default=10_000, help="lines per request")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--max-lines", type=int, default=2_000_000, help="send at most this many lines")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout (s)")
    parser.add_argument("--retries", type=int, default=3, help="resends of a batch that got no answer")
    parser.add_argument("--server-pid", type=int, help="the server's pid: its CPU seconds while timed are reported")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex

    batches = []
    lines = 0
    body_bytes = 0
    with open(args.file, "rb") as f:
        current = []
        for line in f:
            if lines >= args.max_lines:
                break
            current.append(line)
            lines += 1
            if len(current) == args.batch:
                batches.append(b"".join(current))
                current = []
        if current:
            batches.append(b"".join(current))
    body_bytes = sum(len(b) for b in batches)
    print(f"[http] {lines} lines, {len(batches)} batches, {body_bytes} bytes in memory", file=sys.stderr, flush=True)

    url = urllib.parse.urlsplit(args.url)
    work = queue.Queue()
    for index, body in enumerate(batches):
        work.put((index, body))

    lock = threading.Lock()
    totals = {"accepted": 0, "rejected": 0, "requests": 0, "resends": 0, "errors": []}
    rejected_reasons = {}
    latencies = []

    def worker():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
        try:
            while True:
                try:
                    index, body = work.get_nowait()
                except queue.Empty:
                    return
                headers = {
                    "Content-Type": "application/x-ndjson",
                    "Authorization": f"Bearer {args.token}",
                    "Idempotency-Key": f"{run_id}-{index}",
                }
                for attempt in range(args.retries + 1):
                    sent = time.perf_counter()
                    try:
                        conn.request("POST", "/v1/events", body=body, headers=headers)
                        response = conn.getresponse()
                        payload = response.read()
                        break
                    except (OSError, http.client.HTTPException) as error:
                        conn.close()
                        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
                        with lock:
                            if attempt == args.retries:
                                totals["errors"].append(f"batch {index}: {error!r}")
                            else:
                                totals["resends"] += 1
                else:
                    continue
                elapsed = time.perf_counter() - sent
                with lock:
                    totals["requests"] += 1
                    latencies.append(elapsed)
                    if response.status != 200:
                        totals["errors"].append(f"batch {index}: HTTP {response.status} {payload[:200]!r}")
                        continue
                    result = json.loads(payload)
                    totals["accepted"] += result["accepted"]
                    totals["rejected"] += len(result["rejected"])
                    for rejection in result["rejected"]:
                        reason = rejection.get("reason", "?")
                        rejected_reasons[reason] = rejected_reasons.get(reason, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    server_started = process_cpu_s(args.server_pid)
    busy_started = machine_busy_cpu_s()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    server_ended = process_cpu_s(args.server_pid)
    server_cpu = server_ended - server_started if server_started is not None and server_ended is not None else None
    busy = machine_busy_cpu_s() - busy_started

    latencies.sort()

    def pct(p):
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 4)

    out = {
        "lines": lines,
        "bytes": body_bytes,
        "batches": len(batches),
        "batch_lines": args.batch,
        "connections": args.connections,
        "accepted": totals["accepted"],
        "rejected": totals["rejected"],
        "rejected_by_reason": rejected_reasons,
        "requests": totals["requests"],
        "errors": totals["errors"][:10],
        "error_count": len(totals["errors"]),
        "resends": totals["resends"],
        "wall_s": round(wall, 4),
        "events_per_second": round(totals["accepted"] / wall, 1) if wall > 0 else None,
        "lines_per_second": round((totals["accepted"] + totals["rejected"]) / wall, 1) if wall > 0 else None,
        "mb_per_second": round(body_bytes / wall / 1e6, 2) if wall > 0 else None,
        "request_p50_s": pct(0.50),
        "request_p99_s": pct(0.99),
        # This process's user+system CPU seconds from the first send to the last response.
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_s_per_million_events": (
            round(client_cpu / (totals["accepted"] / 1e6), 3) if totals["accepted"] else None
        ),
        "server_cpu_s": round(server_cpu, 3) if server_cpu is not None else None,
        # The machine's busy CPU over the same span minus this client's and the server's: other work.
        "other_cpu_s": round(busy - client_cpu - (server_cpu or 0.0), 3),
    }
    print(json.dumps(out, indent=2))
    if totals["errors"]:
        sys.exit(1)


def process_cpu_s(pid):
    """User+system CPU seconds of a process, from /proc/PID/stat (None without a pid)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_cpu_s():
    """CPU seconds the machine has been busy since boot (the cpu line of /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields)) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
