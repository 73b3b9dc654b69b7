#!/usr/bin/env bash
# bench/cluster_partner.sh: what a partner disclosure costs in cluster mode
# (issue 16), against an embedded node, in one run on this machine.
#
# In cluster mode a disclosure (friend suggestions, an audience's members,
# a feed read) is appended to the cluster's log and the node answers once
# it has applied it and written its audit and feed records (docs/scale.md,
# "One audit chain and one set of feeds"): a round trip through JetStream
# (its fsync included) that the embedded node does not make. This measures
# it with bench/partner_load.py (one client, one request at a time) against
# an embedded node and against a one-node cluster, each fed the same
# workload over HTTP (`proviso bench http-load`), one after the other:
# a. suggestions p50/p99 (each one a disclosure: audit record and feed adds);
# b. audience sizes (no disclosure: an aggregate; the control);
# c. retractions: a refusal's acknowledgement to its `retract` in the feed.
#
# Parameters (environment): SUBJECTS (50000), EVENTS (1000000), DAYS (14),
# SEED (3), START (60 days before today), SUGGESTIONS (500), AUDIENCES
# (300), RETRACTIONS (50), SKIP_BUILD (0).
# Outputs: bench/out/cluster-partner-{embedded,cluster}.json and the table
# in bench/out/cluster-partner.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

SUBJECTS=${SUBJECTS:-50000}
EVENTS=${EVENTS:-1000000}
DAYS=${DAYS:-14}
SEED=${SEED:-3}
START=${START:-$(date -u -d '60 days ago' +%F)}
SUGGESTIONS=${SUGGESTIONS:-500}
AUDIENCES=${AUDIENCES:-300}
RETRACTIONS=${RETRACTIONS:-50}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
EVENTS_FILE=$OUT/cluster-partner-events-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START.ndjson
COMMANDS_FILE=$OUT/cluster-partner-commands.txt
NATS_DIR=$OUT/cluster-nats
CONFIG=$OUT/cluster-partner.toml
KEY=$(printf 'c2%.0s' $(seq 1 32))
INGEST_TOKEN=bench-ingest-token-000001
SUBJECT_TOKEN=bench-subject-token-000001
ADVERTISER_TOKEN=bench-advertiser-token-01
PARTNER=benchnet
PARTNER_TOKEN=bench-partner-token-00000001

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
rm -f "$OUT"/cluster-partner-{embedded,cluster}.json "$OUT/cluster-partner.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
build_binary
private_binary cluster-partner-proviso
need_nats
trap 'stop_server; stop_nats' EXIT

say "workload: $EVENTS events, $SUBJECTS subjects, $DAYS days from $START, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE")
record "${GEN_CMD[*]}"
generate_workload cluster-partner-simulate.stderr "$EVENTS_FILE"
cat >"$CONFIG" <<EOF
[[partners]]
name = "$PARTNER"
purposes = ["security", "product", "ads"]
tokens = ["$PARTNER_TOKEN"]
EOF

run() { # MODE (embedded | cluster)
    local mode=$1
    local data=$OUT/cluster-partner-data-$mode
    rm -rf "$data" "$NATS_DIR"
    local env=(PROVISO_INGEST_TOKEN="$INGEST_TOKEN" PROVISO_PSEUDONYM_KEY="$KEY"
        PROVISO_SUBJECT_SERVICE_TOKEN="$SUBJECT_TOKEN" PROVISO_ADVERTISER_TOKEN="$ADVERTISER_TOKEN")
    if [[ $mode == cluster ]]; then
        start_nats
        env+=(PROVISO_NATS="$NATS_URL")
    fi
    record "${env[*]} $BIN serve --data $data --listen 127.0.0.1:0 --config $CONFIG"
    start_server "cluster-partner-$mode" "${env[@]}" -- --data "$data" --listen 127.0.0.1:0 --config "$CONFIG"
    local ingest=("$BIN" bench http-load "$EVENTS_FILE" --url "$SERVER_URL" --token "$INGEST_TOKEN" --batch 10000
        --connections 4 --max-lines "$EVENTS" --server-pid "$SERVER_PID")
    record "${ingest[*]}"
    say "$mode: ingest"
    "${ingest[@]}" >"$OUT/cluster-partner-ingest-$mode.json"
    local load=(python3 bench/partner_load.py --url "$SERVER_URL" --events "$EVENTS_FILE" --partner "$PARTNER"
        --partner-token "$PARTNER_TOKEN" --advertiser-token "$ADVERTISER_TOKEN" --subject-token "$SUBJECT_TOKEN"
        --suggestions "$SUGGESTIONS" --audiences "$AUDIENCES" --largest 0 --retractions "$RETRACTIONS"
        --seed "$SEED" --pid "$SERVER_PID")
    record "${load[*]}"
    say "$mode: partner load"
    "${load[@]}" >"$OUT/cluster-partner-$mode.json" || echo "partner_load reported problems ($mode)" >&2
    stop_server
    stop_nats
    rm -rf "$data" "$NATS_DIR"
}

run embedded
run cluster

export OUT GIT_HEAD GIT_DIRTY_FILES BIN_SHA256
python3 - <<'EOF' | tee "$OUT/cluster-partner.txt"
import json, os
e = os.environ
print(f"binary {e['GIT_HEAD']} (+{e['GIT_DIRTY_FILES']} modified), sha256 {e['BIN_SHA256'][:16]}")
print(f"{'mode':10} {'suggestions p50/p99 ms':>24} {'non-empty':>10} {'audiences p50/p99 ms':>22} {'retraction seen p50/p99 ms':>28}")
for mode in ("embedded", "cluster"):
    path = os.path.join(e["OUT"], f"cluster-partner-{mode}.json")
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        print(f"{mode:10} (no result: {path})")
        continue
    s, a, t = r.get("suggestions") or {}, r.get("audiences") or {}, r.get("retractions") or {}
    def pair(d):
        d = d or {}
        fmt = lambda v: "nan" if v is None else f"{v:.2f}"
        return f"{fmt(d.get('p50'))} / {fmt(d.get('p99'))}"
    share = s.get("non_empty_share")
    print(f"{mode:10} {pair(s.get('latency_ms')):>24} {share if share is not None else 'nan':>10} "
          f"{pair(a.get('latency_ms')):>22} {pair(t.get('ack_to_seen_ms')):>28}")
EOF
