#!/usr/bin/env bash
# bench/suggestions_under_ingest.sh: friend-suggestion latency while the same
# server ingests at full rate (issue 14: suggestions p99 <= 5 ms).
#
# On the partner workload of bench/partner.sh (200k subjects, median contact
# book 100, ~40% linked to the partner benchnet), ingested once into a
# pristine data dir: for each server binary, a fresh copy of that dir is
# served, and `proviso bench http-load` (the Rust load generator) posts
# INGEST_LINES lines of the same workload as fast as the server acknowledges
# them (BATCH lines per request, CONNECTIONS connections, each answer after
# its fsync) while one more thread asks
# `GET /v1/partners/benchnet/suggestions/ID?limit=20` one at a time (PAUSE_MS
# between requests) for linked accounts drawn with seed SEED: IDLE requests
# before the ingest starts (the idle baseline), then for as long as it runs.
# Every non-empty answer is audited and fed (two fsyncs) before it is sent.
#
# Why the comparison is fair:
# - Same workload file, same pristine data dir copied afresh for each run,
#   same load generator binary (this tree's) for every server binary.
# - BASELINE_BIN (optional) is a second server binary, e.g. an older
#   commit's `target/release/proviso` copied aside: both are measured in the
#   same run, alternating order over ROUNDS rounds.
# - Contention is visible: `other_cpu_s` is the CPU the machine spent busy
#   during the ingest minus the server's and the generator's (/proc). About 0
#   on a quiet machine; on 2 shared cores it is often not, so read the
#   figures beside it.
#
# Parameters (environment): SUBJECTS (200000), DAYS (14), EVENTS (3000000),
# SEED (3), START (60 days before today, UTC), INGEST_LINES (300000: ~300 MB
# of this workload, held in memory), BATCH (10000), CONNECTIONS (2), PAUSE_MS
# (2), IDLE (300), ROUNDS (1), BASELINE_BIN (unset), WAIT_QUIET (300: before
# each run, wait at most this many seconds while a cargo/rustc process runs;
# 0 never waits), SKIP_BUILD (0).
# Outputs: bench/out/sui-*.json, the table in bench/out/sui-results.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

SUBJECTS=${SUBJECTS:-200000}
DAYS=${DAYS:-14}
EVENTS=${EVENTS:-3000000}
SEED=${SEED:-3}
START=${START:-$(date -u -d '60 days ago' +%F)}
INGEST_LINES=${INGEST_LINES:-300000}
BATCH=${BATCH:-10000}
CONNECTIONS=${CONNECTIONS:-2}
PAUSE_MS=${PAUSE_MS:-2}
IDLE=${IDLE:-300}
ROUNDS=${ROUNDS:-1}
BASELINE_BIN=${BASELINE_BIN:-}
SKIP_BUILD=${SKIP_BUILD:-0}
WAIT_QUIET=${WAIT_QUIET:-300}

OUT=bench/out
BIN=target/release/proviso
EVENTS_FILE=$OUT/partner-events-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START.ndjson
LABELS_FILE=$OUT/partner-labels-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START.ndjson
PRISTINE=$OUT/sui-pristine-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START
RUN_DATA=$OUT/sui-data
BENCH_CONFIG=$OUT/partner-bench.toml
COMMANDS_FILE=$OUT/sui-commands.txt
INGEST_TOKEN=bench-ingest-token-0000001
PARTNER=benchnet
PARTNER_TOKEN=bench-partner-token-00000001

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
rm -f "$OUT"/sui-run-*.json "$OUT/sui-results.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
SERVER_LISTEN_POLLS=2400

build_binary
private_binary sui-proviso
LOADGEN=$BIN
declare -A SERVERS=([current]=$BIN)
if [[ -n "$BASELINE_BIN" ]]; then
    cp "$BASELINE_BIN" "$OUT/sui-baseline" && SERVERS[baseline]=$OUT/sui-baseline
fi

say "workload: $EVENTS events, $SUBJECTS subjects, $DAYS days from $START, seed $SEED"
GEN_CMD=("$LOADGEN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE" --labels "$LABELS_FILE")
record "${GEN_CMD[*]}"
generate_workload sui-simulate.stderr "$EVENTS_FILE" "$LABELS_FILE"
cat >"$BENCH_CONFIG" <<EOF
# bench: one partner network receiving security, product and ads.
[[partners]]
name = "$PARTNER"
purposes = ["security", "product", "ads"]
tokens = ["$PARTNER_TOKEN"]
EOF
if [[ ! -d "$PRISTINE" ]]; then
    say "ingest the workload once into $PRISTINE"
    record "$LOADGEN ingest $EVENTS_FILE --data $PRISTINE --config $BENCH_CONFIG --json"
    "$LOADGEN" ingest "$EVENTS_FILE" --data "$PRISTINE.tmp" --config "$BENCH_CONFIG" --json >"$OUT/sui-ingest.json"
    mv "$PRISTINE.tmp" "$PRISTINE"
fi

for round in $(seq 1 "$ROUNDS"); do
    labels=("${!SERVERS[@]}")
    # Alternate which binary goes first.
    if ((round % 2 == 0)); then labels=($(printf '%s\n' "${labels[@]}" | sort -r)); else labels=($(printf '%s\n' "${labels[@]}" | sort)); fi
    for label in "${labels[@]}"; do
        say "round $round: $label (${SERVERS[$label]})"
        rm -rf "$RUN_DATA"
        cp -a "$PRISTINE" "$RUN_DATA"
        BIN=${SERVERS[$label]}
        record "PROVISO_INGEST_TOKEN=$INGEST_TOKEN $BIN serve --listen 127.0.0.1:0 --data $RUN_DATA --config $BENCH_CONFIG"
        wait_quiet
        start_server "sui-serve-$label" PROVISO_INGEST_TOKEN="$INGEST_TOKEN" \
            -- --listen 127.0.0.1:0 --data "$RUN_DATA" --config "$BENCH_CONFIG"
        LOAD_CMD=("$LOADGEN" bench http-load "$EVENTS_FILE" --url "$SERVER_URL" --token "$INGEST_TOKEN"
            --max-lines "$INGEST_LINES" --batch "$BATCH" --connections "$CONNECTIONS" --server-pid "$SERVER_PID"
            --suggestions-partner "$PARTNER" --suggestions-token "$PARTNER_TOKEN" --suggestions-idle "$IDLE"
            --suggestions-pause-ms "$PAUSE_MS" --seed "$SEED")
        record "${LOAD_CMD[*]}"
        "${LOAD_CMD[@]}" >"$OUT/sui-run-$label-$round.json" || echo "the load reported errors; see $OUT/sui-run-$label-$round.json" >&2
        stop_server
    done
done
rm -rf "$RUN_DATA"

export OUT GIT_HEAD GIT_DIRTY_FILES BIN_SHA256
python3 - <<'EOF' | tee "$OUT/sui-results.txt"
import glob, json, os

out = os.environ["OUT"]
print(f"tree {os.environ['GIT_HEAD']} (+{os.environ['GIT_DIRTY_FILES']} modified), loadgen sha256 {os.environ['BIN_SHA256']}")
print(f"{'run':<16} {'idle p50/p99':>14} {'ingesting p50/p90/p99/max (ms)':>34} {'asked':>6} {'events/s':>9} {'srv cpu':>8} {'gen cpu':>8} {'other':>6}")
for path in sorted(glob.glob(os.path.join(out, "sui-run-*.json"))):
    name = os.path.basename(path)[len("sui-run-"):-len(".json")]
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        print(f"{name:<16} (no figures)")
        continue
    s = r.get("suggestions") or {}
    idle, busy = s.get("idle") or {}, s.get("under_ingest") or {}
    print(f"{name:<16} {idle.get('p50', '-'):>6}/{idle.get('p99', '-'):<7} "
          f"{busy.get('p50', '-'):>8}/{busy.get('p90', '-')}/{busy.get('p99', '-')}/{busy.get('max', '-'):<10} "
          f"{busy.get('requests', 0):>6} {r['events_per_second']:>9,.0f} {r['server_cpu_s']:>8} {r['client_cpu_s']:>8} {r['other_cpu_s']:>6}")
EOF
