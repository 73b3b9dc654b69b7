#!/usr/bin/env bash
# bench/compact_served.sh: what an erasure's compaction costs a running
# server's ingest: how long batches wait for their acknowledgement while
# the server compacts its log.
#
# For each binary (BASELINE_BIN, if set, then CURRENT_BIN): a copy of one
# data dir (FILE ingested once with `proviso ingest`) is served with
# `erasure_compaction_seconds` = 1; a client posts a batch of BATCH session
# lines every PERIOD_MS over one keep-alive connection for SECONDS_RUN
# seconds and times each acknowledgement; after LEAD seconds it posts a
# `delete_account` of FILE's first sender. `proviso simulate` files hold
# deletions of their own, which `proviso ingest` leaves pending, so the
# server compacts twice: about a second after it starts, and about a second
# after the client's deletion. Each "Log compacted" line of the server gives
# that compaction's time and, for binaries that say it, the writer's share
# (`writer_millis`). The table: batches acknowledged, acknowledgement p50 /
# p99 / max over the whole run, the longest wait of a batch sent after the
# client's erasure (its compaction, without the first batches' warm-up and
# the start's compaction), the server's peak RSS (VmHWM), and each
# compaction's times.
#
# Parameters (environment): FILE (the 1× file of bench/compare.sh,
# bench/out/events-5000000-100000-30-7.ndjson; any `proviso simulate`
# output), BASELINE_BIN (unset), CURRENT_BIN (target/release/proviso),
# SECONDS_RUN (60), LEAD (20), BATCH (1000), PERIOD_MS (100), ROUNDS (1),
# SKIP_BUILD (0). Output: a table on stdout, also in
# bench/out/compact-served.txt. All data comes from proviso's own simulator.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

OUT=bench/out
BIN=${CURRENT_BIN:-target/release/proviso}
SKIP_BUILD=${SKIP_BUILD:-0}
FILE=${FILE:-bench/out/events-5000000-100000-30-7.ndjson}
SECONDS_RUN=${SECONDS_RUN:-60}
LEAD=${LEAD:-20}
BATCH=${BATCH:-1000}
PERIOD_MS=${PERIOD_MS:-100}
ROUNDS=${ROUNDS:-1}
INGEST_TOKEN=bench-ingest-token-000001
COMMANDS_FILE=$OUT/compact-served-commands.txt
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ -s "$FILE" ]] || {
    echo "no events file $FILE: run bench/compare.sh first (or proviso simulate), or set FILE" >&2
    exit 1
}
build_binary
private_binary compact-served-current
CURRENT=$BIN
BINARIES=("$CURRENT")
if [[ -n "${BASELINE_BIN:-}" ]]; then
    BIN=$BASELINE_BIN
    private_binary compact-served-baseline
    BINARIES=("$BIN" "$CURRENT")
fi

MASTER=$OUT/compact-served-master
DATA=$OUT/compact-served-data
ROWS=$OUT/compact-served-rows.tsv
: >"$ROWS"
say "ingest $FILE once (the current binary) into $MASTER"
rm -rf "$MASTER"
record "$CURRENT ingest $FILE --data $MASTER"
"$CURRENT" ingest "$FILE" --data "$MASTER" >"$OUT/compact-served-ingest.log" 2>&1
FIRST_PHONE=$(head -1 "$FILE" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["phone"])')
LAST_TS=$(tail -1 "$FILE" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["ts"])')

for round in $(seq 1 "$ROUNDS"); do
    for BIN in "${BINARIES[@]}"; do
        say "round $round: $BIN"
        rm -rf "$DATA"
        cp -a "$MASTER" "$DATA"
        start_server compact-served PROVISO_INGEST_TOKEN="$INGEST_TOKEN" PROVISO_ERASURE_COMPACTION_SECONDS=1 \
            -- --data "$DATA" --listen 127.0.0.1:0
        record "PROVISO_INGEST_TOKEN=... PROVISO_ERASURE_COMPACTION_SECONDS=1 $BIN serve --data $DATA --listen 127.0.0.1:0"
        python3 - "$SERVER_URL" "$INGEST_TOKEN" "$SECONDS_RUN" "$LEAD" "$BATCH" "$PERIOD_MS" "$FIRST_PHONE" "$LAST_TS" \
            >"$OUT/compact-served-client.json" <<'PY'
import http.client, json, sys, time, urllib.parse
url, token, seconds, lead, batch, period_ms, phone, last_ts = sys.argv[1:]
seconds, lead, batch, period = float(seconds), float(lead), int(batch), int(period_ms) / 1000
parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
def post(body):
    started = time.perf_counter()
    conn.request("POST", "/v1/events", body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        raise SystemExit(f"status {answer.status}")
    return started, time.perf_counter()
start = time.perf_counter()
acks, n, erased_at = [], 0, None
while time.perf_counter() - start < seconds:
    if erased_at is None and time.perf_counter() - start >= lead:
        line = json.dumps({"type": "delete_account", "ts": last_ts, "phone": phone})
        erased_at = post(line.encode())[1] - start
    now_ms = int(time.time() * 1000)
    lines = "\n".join(
        json.dumps({"type": "session", "ts": now_ms, "phone": f"+9198{(n * batch + k) % 10**8:08d}", "device": "d"})
        for k in range(batch))
    n += 1
    sent, done = post(lines.encode())
    acks.append((sent - start, done - sent))
    pause = period - (done - sent)
    if pause > 0:
        time.sleep(pause)
def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")
slowest = sorted(acks, key=lambda a: -a[1])[:3]
took = [t for _, t in acks]
print(json.dumps({"erased_at": erased_at, "batches": len(acks), "lines": len(acks) * batch,
    "slowest": [[round(sent, 2), round(t * 1000, 1)] for sent, t in slowest],
    "acks": [pct(took, .5), pct(took, .99), max(took) * 1000],
    "max_after_erasure": max([t for sent, t in acks if sent >= lead] or [float("nan")]) * 1000}))
PY
        # Both compactions are done once the server says so (or give up).
        for _ in $(seq 1 600); do
            (($(grep -c "Log compacted" "$OUT/compact-served.stderr" || true) >= 2)) && break
            sleep 0.5
        done
        peak_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
        stop_server
        python3 - "$BIN" "$OUT/compact-served-client.json" "$OUT/compact-served.stderr" "$peak_kib" >>"$ROWS" <<'PY'
import json, re, sys
binary, client, peak_kib = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[4])
def field(line, name):
    found = re.search(rf" {name}=(\d+)", line)
    return f"{int(found.group(1)) / 1000:.2f}" if found else "-"
compactions = [f"{field(line, 'millis')} / {field(line, 'writer_millis')}"
               for line in open(sys.argv[3]) if "Log compacted" in line]
print("\t".join([binary.split("/")[-1], str(client["batches"]), *(f"{v:.1f}" for v in client["acks"]),
                 f"{client['max_after_erasure']:.1f}", f"{peak_kib / 1024:.0f}", "; ".join(compactions)]))
PY
    done
done
rm -rf "$DATA"

python3 - "$ROWS" "$FILE" "$BATCH" "$PERIOD_MS" <<'EOF' | tee "$OUT/compact-served.txt"
import sys
rows, file, batch, period = sys.argv[1:]
print(f"{file}: a batch of {batch} sessions every {period} ms; the server compacts twice")
print(f"{'binary':26} {'batches':>7} {'ack p50 / p99 / max ms':>26} {'max after erasure':>17} {'peak MiB':>8}  "
      "compactions: whole s / writer s")
for line in open(rows):
    name, batches, p50, p99, most, after, peak, compactions = line.rstrip("\n").split("\t")
    print(f"{name:26} {batches:>7} {float(p50):7.1f} / {float(p99):7.1f} / {float(most):7.1f} {float(after):17.1f} "
          f"{peak:>8}  {compactions}")
EOF
