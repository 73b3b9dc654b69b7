#!/usr/bin/env bash
# bench/takeover.sh: what owning usage by partition costs a cluster node
# (issue 16), on this machine, in one run.
#
# 1. One embedded node and a cluster of two nodes (one nats-server,
#    JetStream, `sync_interval: always`) are each fed the same simulated
#    workload over HTTP (`proviso bench http-load`).
# 2. Usage queries through each (`GET /v1/metrics/active`, 30 days, window
#    30; `GET /v1/metrics/messages`, 30 days): QUERIES each, one at a time,
#    client-side latency. The embedded node answers from its own state;
#    the cluster node gathers the parts of both nodes over NATS
#    (`cluster::gather`). Both answers must be equal (checked).
# 3. Takeover: the second node is killed (`kill -9`); the time until the
#    first covers all 64 partitions (`/healthz` `partitions_covered`), and
#    the rebuild's own time from its log line ("Usage and audiences rebuilt for the
#    partitions this node covers": records replayed, milliseconds). The
#    lease is LEASE_SECONDS (the dead node's leases lapse first).
#
# Parameters (environment): EVENTS (1000000), SUBJECTS (20000), DAYS (30),
# SEED (7), QUERIES (200), LEASE_SECONDS (6), SKIP_BUILD (0).
# Output: a table on stdout, also in bench/out/takeover.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

EVENTS=${EVENTS:-1000000}
SUBJECTS=${SUBJECTS:-20000}
DAYS=${DAYS:-30}
SEED=${SEED:-7}
QUERIES=${QUERIES:-200}
LEASE_SECONDS=${LEASE_SECONDS:-6}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
COMMANDS_FILE=$OUT/takeover-commands.txt
EVENTS_FILE=$OUT/takeover-events-$EVENTS-$SUBJECTS-$DAYS-$SEED.ndjson
NATS_DIR=$OUT/takeover-nats
KEY=5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee5be1c0ffee0042
INGEST_TOKEN=bench-ingest-token-0000001
ANALYST_TOKEN=bench-analyst-token-000001
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
need_nats

build_binary
private_binary takeover-proviso

PIDS=()
URLS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    PIDS=()
    URLS=()
    stop_nats
}
trap stop_all EXIT

say "workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
START=$(date -u -d "$DAYS days ago" +%F)
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE")
record "${GEN_CMD[*]}"
generate_workload takeover-simulate.stderr "$EVENTS_FILE"
TO=$(date -u +%F)
FROM=$(date -u -d "29 days ago" +%F)

# NAME NODES (0: embedded): starts the servers, feeds them the workload.
serve_and_feed() {
    local name=$1 nodes=$2 n
    local env=(PROVISO_INGEST_TOKEN="$INGEST_TOKEN" PROVISO_ANALYST_TOKEN="$ANALYST_TOKEN" PROVISO_PSEUDONYM_KEY="$KEY")
    if ((nodes > 0)); then
        start_nats
        PIDS+=("$NATS_PID")
        env+=(PROVISO_NATS="$NATS_URL" PROVISO_CLUSTER_LEASE_SECONDS="$LEASE_SECONDS")
    fi
    for n in $(seq 1 "$(( nodes > 0 ? nodes : 1 ))"); do
        rm -rf "$OUT/takeover-data-$name-$n"
        record "${env[*]} $BIN serve --data $OUT/takeover-data-$name-$n --listen 127.0.0.1:0"
        start_server "takeover-$name-node$n" "${env[@]}" -- --data "$OUT/takeover-data-$name-$n" --listen 127.0.0.1:0
        PIDS+=("$SERVER_PID")
        URLS+=("$SERVER_URL")
        SERVER_PID=
    done
    local urls
    urls=$(IFS=,; echo "${URLS[*]}")
    local cmd=("$BIN" bench http-load "$EVENTS_FILE" --url "$urls" --token "$INGEST_TOKEN" --batch 5000
        --connections 2 --max-lines "$EVENTS")
    record "${cmd[*]}"
    "${cmd[@]}" >"$OUT/takeover-load-$name.json" || echo "$name: the load reported errors" >&2
}

# URL NAME: QUERIES of each usage query, one at a time; latencies in ms to
# $OUT/takeover-latency-NAME.txt, the last answers to .json files.
query_latency() {
    python3 - "$1" "$ANALYST_TOKEN" "$FROM" "$TO" "$QUERIES" "$OUT/takeover-latency-$2.txt" "$OUT/takeover-answers-$2.json" <<'EOF'
import json, sys, time, urllib.request
url, token, frm, to, n, out, answers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7]
paths = [f"/v1/metrics/active?from={frm}&to={to}&window=30", f"/v1/metrics/messages?from={frm}&to={to}"]
lat, last = {p: [] for p in paths}, {}
for _ in range(n):
    for p in paths:
        req = urllib.request.Request(url + p, headers={"Authorization": f"Bearer {token}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            body = r.read()
        lat[p].append((time.perf_counter() - t) * 1000)
        last[p] = json.loads(body)
with open(out, "w") as f:
    for p, xs in lat.items():
        xs.sort()
        q = lambda k: xs[min(len(xs) - 1, int(k * len(xs)))]
        f.write(f"{p.split('?')[0]}\t{q(0.5):.2f}\t{q(0.99):.2f}\t{xs[-1]:.2f}\n")
json.dump(last, open(answers, "w"), sort_keys=True)
EOF
}

say "embedded node"
serve_and_feed embedded 0
query_latency "${URLS[0]}" embedded
stop_all

say "cluster of two nodes"
serve_and_feed cluster 2
# Both nodes hold their share before the queries.
for _ in $(seq 1 600); do
    covered=$(curl -fsS "${URLS[0]}/healthz" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("partitions_covered") or []))')
    [[ "$covered" == 32 ]] && break
    sleep 0.1
done
query_latency "${URLS[0]}" cluster
if ! cmp -s "$OUT/takeover-answers-embedded.json" "$OUT/takeover-answers-cluster.json"; then
    echo "the cluster's gathered answers differ from the embedded node's" >&2
    exit 1
fi
say "takeover: kill -9 of the second node"
kill -9 "${PIDS[2]}"
killed=$(now)
for _ in $(seq 1 1200); do
    covered=$(curl -fsS "${URLS[0]}/healthz" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("partitions_covered") or []))')
    [[ "$covered" == 64 ]] && break
    sleep 0.05
done
covered_after=$(python3 -c "print(f'{$(now) - $killed:.2f}')")
rebuild=$(grep -h "rebuilt for the partitions this node covers" "$OUT/takeover-cluster-node1.stderr" | tail -1 || true)
query_latency "${URLS[0]}" after
cmp -s "$OUT/takeover-answers-embedded.json" "$OUT/takeover-answers-after.json" || {
    echo "after the takeover the answers differ from the embedded node's" >&2
    exit 1
}
stop_all

{
    echo "takeover bench: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED; lease ${LEASE_SECONDS} s; $(git rev-parse --short HEAD)"
    echo "query latency, ms (p50 / p99 / max), $QUERIES each:"
    for name in embedded cluster after; do
        while IFS=$'\t' read -r path p50 p99 max; do
            printf '  %-9s %-22s %8s %8s %8s\n' "$name" "$path" "$p50" "$p99" "$max"
        done <"$OUT/takeover-latency-$name.txt"
    done
    echo "answers: the cluster's gathered answers equal the embedded node's, before and after the takeover"
    echo "takeover: all 64 partitions covered by the survivor ${covered_after} s after kill -9"
    echo "rebuild log line: ${rebuild:-none found}"
} | tee "$OUT/takeover.txt"
rm -rf "$OUT"/takeover-data-* "$NATS_DIR"
