#!/usr/bin/env bash
# bench/cluster.sh: HTTP batched ingest into one embedded node, then into a
# cluster of 1, 2 and 3 nodes on one nats-server, on this machine, in one
# run (issue 16: throughput with one, two and three nodes and the cost per
# event of cluster mode against embedded mode).
#
# Every run: a fresh nats-server (JetStream, `sync_interval: always`) for
# the cluster runs, fresh data dirs, the same workload (`proviso simulate`),
# sent by `proviso bench http-load` with CONNECTIONS keep-alive connections
# spread over the nodes (connection i to node i mod NODES), BATCH lines a
# request, an Idempotency-Key per batch. Each answer comes after the batch
# is durable (the node's log fsynced; in cluster mode JetStream's ack, after
# its fsync, and the node having applied it). Figures: events/s, wall, and
# the CPU seconds of every proviso node plus nats-server over the timed
# span (per million events: the cost per event). This machine has 2 cores:
# more nodes cannot show scaling here, only what cluster mode costs.
#
# Parameters (environment): EVENTS (1000000), SUBJECTS (100000), DAYS (30),
# SEED (7), BATCH (10000), CONNECTIONS (4), NODES (1 2 3), SKIP_BUILD (0).
# Outputs: bench/out/cluster-run-*.json, the table in bench/out/cluster.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

EVENTS=${EVENTS:-1000000}
SUBJECTS=${SUBJECTS:-100000}
DAYS=${DAYS:-30}
SEED=${SEED:-7}
BATCH=${BATCH:-10000}
CONNECTIONS=${CONNECTIONS:-4}
NODES=${NODES:-1 2 3}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
EVENTS_FILE=$OUT/http-events-$EVENTS-$SUBJECTS-$DAYS-$SEED.ndjson
COMMANDS_FILE=$OUT/cluster-commands.txt
NATS_DIR=$OUT/cluster-nats
INGEST_TOKEN=bench-ingest-token-000001
KEY=$(printf 'c1%.0s' $(seq 1 32))

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
rm -f "$OUT"/cluster-run-*.json "$OUT/cluster.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
build_binary
private_binary cluster-proviso
need_nats

PIDS=()
URLS=()
stop_all() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    URLS=()
    stop_nats
}
trap stop_all EXIT

say "workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start 2026-01-01 --out "$EVENTS_FILE")
record "${GEN_CMD[*]}"
generate_workload cluster-simulate.stderr "$EVENTS_FILE"

run() { # NAME NODES (0: embedded)
    local name=$1 nodes=$2 n
    stop_all
    local env=(PROVISO_INGEST_TOKEN="$INGEST_TOKEN" PROVISO_PSEUDONYM_KEY="$KEY")
    if ((nodes > 0)); then
        start_nats
        PIDS+=("$NATS_PID")
        env+=(PROVISO_NATS="$NATS_URL")
    fi
    for n in $(seq 1 "$(( nodes > 0 ? nodes : 1 ))"); do
        rm -rf "$OUT/cluster-data-$n"
        record "${env[*]} $BIN serve --data $OUT/cluster-data-$n --listen 127.0.0.1:0"
        start_server "cluster-$name-node$n" "${env[@]}" -- --data "$OUT/cluster-data-$n" --listen 127.0.0.1:0
        PIDS+=("$SERVER_PID")
        URLS+=("$SERVER_URL")
        SERVER_PID=
    done
    local urls pids
    urls=$(IFS=,; echo "${URLS[*]}")
    pids=$(IFS=,; echo "${PIDS[*]}")
    local cmd=("$BIN" bench http-load "$EVENTS_FILE" --url "$urls" --token "$INGEST_TOKEN" --batch "$BATCH"
        --connections "$CONNECTIONS" --max-lines "$EVENTS" --server-pid "$pids")
    record "${cmd[*]}"
    say "$name"
    "${cmd[@]}" >"$OUT/cluster-run-$name.json" || echo "$name reported errors; see $OUT/cluster-run-$name.json" >&2
    stop_all
    for n in $(seq 1 "$(( nodes > 0 ? nodes : 1 ))"); do rm -rf "$OUT/cluster-data-$n"; done
    rm -rf "$NATS_DIR"
}

run 0-embedded 0
for nodes in $NODES; do
    run "$nodes-nodes" "$nodes"
done

export OUT GIT_HEAD GIT_DIRTY_FILES BIN_SHA256 EVENTS BATCH CONNECTIONS
python3 - <<'EOF' | tee "$OUT/cluster.txt"
import glob, json, os

e = os.environ
out = e["OUT"]
print(f"binary {e['GIT_HEAD']} (+{e['GIT_DIRTY_FILES']} modified), sha256 {e['BIN_SHA256']}; "
      f"{e['EVENTS']} events, {e['BATCH']} lines/batch, {e['CONNECTIONS']} connections")
rows = []
for path in sorted(glob.glob(os.path.join(out, "cluster-run-*.json"))):
    name = os.path.basename(path)[len("cluster-run-"):-len(".json")]
    try:
        rows.append((name, json.load(open(path))))
    except (OSError, ValueError):
        print(f"{name:<12} (no figures)")
base = next((r for n, r in rows if n == "0-embedded"), None)
print(f"{'run':<12} {'events/s':>9} {'vs embedded':>11} {'wall s':>7} {'server cpu s':>12} {'cpu s per M':>11} {'other cpu s':>11} {'p50/p99 s':>14}")
for name, r in rows:
    per_m = r["server_cpu_s"] / (r["accepted"] / 1e6) if r.get("server_cpu_s") and r.get("accepted") else float("nan")
    ratio = r["events_per_second"] / base["events_per_second"] if base else float("nan")
    lat = r["request_latency_ms"]
    print(f"{name:<12} {r['events_per_second']:>9,.0f} {ratio:>11.2f} {r['wall_s']:>7.2f} {r['server_cpu_s']:>12} "
          f"{per_m:>11.2f} {r['other_cpu_s']:>11} {lat['p50'] / 1000:>6.3f}/{lat['p99'] / 1000:<7.3f}")
EOF
