#!/usr/bin/env bash
# bench/http_client.sh: HTTP batched ingest measured with two load generators
# in the same run: bench/http_load.py (Python, standard library) and
# `proviso bench http-load` (Rust, ureq), so the server's events/s and what
# each client costs in CPU can be read side by side (issue 14: >= 400k
# events/s on 2 cores, with a generator that costs little CPU).
#
# Both clients read the first LINES lines of the same workload into memory
# and cut them into BATCH-line NDJSON bodies before the clock starts, post
# them over CONNECTIONS keep-alive connections with an Idempotency-Key per
# batch (a batch without an answer is resent under its key), and time from
# the first send to the last answer; every answer comes after the batch is
# fsync'd and applied. Each run gets a fresh, empty data dir and a fresh
# server (the same private copy of the binary), so the server does the same
# work for both clients: first sight of every number included.
#
# Figures per run: the server's events/s, the client's own CPU seconds over
# the timed span (and per million events), the server's, and `other_cpu_s`
# (the machine's busy CPU over the span minus both: about 0 on a quiet
# machine; the clients share the 2 cores with the server, so a costlier
# client also lowers the server's figure).
#
# Parameters (environment): EVENTS (1000000: the workload file), SUBJECTS
# (100000), DAYS (30), SEED (7), LINES (EVENTS), BATCH (10000), CONNECTIONS
# (4), ROUNDS (1: each round runs both clients, alternating which goes
# first), SKIP_BUILD (0).
# Outputs: bench/out/http-client-*.json, the table in bench/out/http-client.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

EVENTS=${EVENTS:-1000000}
SUBJECTS=${SUBJECTS:-100000}
DAYS=${DAYS:-30}
SEED=${SEED:-7}
LINES=${LINES:-$EVENTS}
BATCH=${BATCH:-10000}
CONNECTIONS=${CONNECTIONS:-4}
ROUNDS=${ROUNDS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
EVENTS_FILE=$OUT/http-events-$EVENTS-$SUBJECTS-$DAYS-$SEED.ndjson
DATA=$OUT/http-client-data
COMMANDS_FILE=$OUT/http-client-commands.txt
INGEST_TOKEN=bench-ingest-token-000001

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
rm -f "$OUT"/http-client-run-*.json "$OUT/http-client.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

build_binary
private_binary http-client-proviso

say "workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start 2026-01-01 --out "$EVENTS_FILE")
record "${GEN_CMD[*]}"
generate_workload http-client-simulate.stderr "$EVENTS_FILE"

run_client() { # NAME ROUND
    local name=$1 round=$2
    rm -rf "$DATA"
    record "PROVISO_INGEST_TOKEN=$INGEST_TOKEN $BIN serve --data $DATA --listen 127.0.0.1:0"
    start_server "http-client-serve-$name" PROVISO_INGEST_TOKEN="$INGEST_TOKEN" -- --data "$DATA" --listen 127.0.0.1:0
    local cmd
    if [[ "$name" == python ]]; then
        cmd=(python3 bench/http_load.py "$EVENTS_FILE" --url "$SERVER_URL" --token "$INGEST_TOKEN" --batch "$BATCH"
            --connections "$CONNECTIONS" --max-lines "$LINES" --server-pid "$SERVER_PID")
    else
        cmd=("$BIN" bench http-load "$EVENTS_FILE" --url "$SERVER_URL" --token "$INGEST_TOKEN" --batch "$BATCH"
            --connections "$CONNECTIONS" --max-lines "$LINES" --server-pid "$SERVER_PID")
    fi
    record "${cmd[*]}"
    "${cmd[@]}" >"$OUT/http-client-run-$name-$round.json" || echo "$name reported errors; see $OUT/http-client-run-$name-$round.json" >&2
    stop_server
    rm -rf "$DATA"
}

for round in $(seq 1 "$ROUNDS"); do
    if ((round % 2 == 1)); then order=(python rust); else order=(rust python); fi
    for name in "${order[@]}"; do
        say "round $round: $name client"
        run_client "$name" "$round"
    done
done

export OUT GIT_HEAD GIT_DIRTY_FILES BIN_SHA256 LINES BATCH CONNECTIONS
python3 - <<'EOF' | tee "$OUT/http-client.txt"
import glob, json, os

e = os.environ
out = e["OUT"]
print(f"binary {e['GIT_HEAD']} (+{e['GIT_DIRTY_FILES']} modified), sha256 {e['BIN_SHA256']}; "
      f"{e['LINES']} lines, {e['BATCH']} lines/batch, {e['CONNECTIONS']} connections")
print(f"{'run':<12} {'events/s':>9} {'wall s':>7} {'client cpu s':>12} {'per M events':>12} {'server cpu s':>12} {'other cpu s':>11} {'p50/p99 s':>14}")
for path in sorted(glob.glob(os.path.join(out, "http-client-run-*.json"))):
    name = os.path.basename(path)[len("http-client-run-"):-len(".json")]
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        print(f"{name:<12} (no figures)")
        continue
    lat = r.get("request_latency_ms")
    p50, p99 = (lat["p50"] / 1000, lat["p99"] / 1000) if lat else (r.get("request_p50_s"), r.get("request_p99_s"))
    print(f"{name:<12} {r['events_per_second']:>9,.0f} {r['wall_s']:>7.2f} {r['client_cpu_s']:>12} "
          f"{r['client_cpu_s_per_million_events']:>12} {r['server_cpu_s']:>12} {r['other_cpu_s']:>11} {p50:>6.3f}/{p99:<7.3f}")
EOF
