#!/usr/bin/env bash
# bench/partner_rss.sh: server RSS on the partner workload, two binaries side
# by side, and what a server holds before it holds anyone.
#
# Needs bench/partner.sh to have run once (its workload file and its
# ingested data dir, bench/out/partner-data). For each round and each binary
# (BASELINE_BIN, then this tree's target/release/proviso, alternating over
# ROUNDS rounds): a fresh copy of that data dir is served, VmRSS is read once
# it answers /healthz (the snapshot loaded), then bench/partner_load.py runs
# its suggestions, audiences and retractions (SUGGESTIONS, AUDIENCES,
# RETRACTIONS) and VmRSS is read again at once ("after load") and once more
# SETTLE_SECONDS later ("settled": a server that has stopped receiving
# requests gives its freed pages back after a second). RSS per subject is
# over the 200,000 subjects of the workload. The settled reading is also
# split into anonymous memory (heap, stacks: what the state and the work
# hold) and file-backed pages (the binary's text and read-only data, mapped
# 64 KiB around each page the process touched, and shared libraries).
#
# The fixed part: each binary also serves an empty data dir; VmRSS when it
# answers, and after resolving one phone number of each of 8 regions (the
# phone metadata and its compiled patterns, loaded on first use). Those
# bytes do not grow with the people held, but at 200,000 people they count
# in the per-subject figure.
#
# Parameters (environment): BASELINE_BIN (required: e.g. an older commit's
# binary copied aside), ROUNDS (2), SUGGESTIONS (500), AUDIENCES (200),
# RETRACTIONS (30), SETTLE_SECONDS (2.5), SKIP_BUILD (0), CURRENT_BIN (target/release/proviso: the
# binary measured against the baseline).
# Output: a table on stdout, also in bench/out/partner-rss.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

BASELINE_BIN=${BASELINE_BIN:?set BASELINE_BIN to the binary to compare with}
ROUNDS=${ROUNDS:-2}
SUGGESTIONS=${SUGGESTIONS:-500}
AUDIENCES=${AUDIENCES:-200}
RETRACTIONS=${RETRACTIONS:-30}
SETTLE_SECONDS=${SETTLE_SECONDS:-2.5}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=${CURRENT_BIN:-target/release/proviso}
COMMANDS_FILE=$OUT/partner-rss-commands.txt
SUBJECTS=200000
PARTNER_TOKEN=bench-partner-token-00000001
ADVERTISER_TOKEN=bench-advertiser-token-01
SUBJECT_TOKEN=bench-subject-token-000001
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
SERVER_LISTEN_POLLS=2400

EVENTS_FILE=$(ls -t "$OUT"/partner-events-*.ndjson 2>/dev/null | head -1 || true)
[[ -n "$EVENTS_FILE" && -d "$OUT/partner-data" ]] || {
    echo "run bench/partner.sh first: it makes the workload and $OUT/partner-data" >&2
    exit 1
}
build_binary
private_binary partner-rss-current
cp "$BASELINE_BIN" "$OUT/partner-rss-baseline"
declare -A SERVERS=([baseline]=$OUT/partner-rss-baseline [current]=$BIN)

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# The settled RSS's two parts: anonymous memory (the heap, stacks) and
# file-backed pages (the binary's text and read-only data, shared libraries).
rss_parts_kib() { awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { print a "\t" f }' "/proc/$1/status"; }

# NAME ROUND: one served copy of the partner data dir under load.
loaded_run() {
    local data=$OUT/partner-rss-data
    rm -rf "$data" && cp -r "$OUT/partner-data" "$data"
    BIN=${SERVERS[$1]}
    start_server "partner-rss-$1" PROVISO_SUBJECT_SERVICE_TOKEN="$SUBJECT_TOKEN" \
        PROVISO_ADVERTISER_TOKEN="$ADVERTISER_TOKEN" PROVISO_AUDIENCE_K=100 \
        -- --listen 127.0.0.1:0 --data "$data" --config "$OUT/partner-bench.toml"
    local loaded
    loaded=$(rss_kib "$SERVER_PID")
    python3 bench/partner_load.py --url "$SERVER_URL" --events "$EVENTS_FILE" --partner benchnet \
        --partner-token "$PARTNER_TOKEN" --advertiser-token "$ADVERTISER_TOKEN" --subject-token "$SUBJECT_TOKEN" \
        --suggestions "$SUGGESTIONS" --audiences "$AUDIENCES" --retractions "$RETRACTIONS" --seed 3 \
        --pid "$SERVER_PID" >"$OUT/partner-rss-load-$1-$2.json" 2>/dev/null ||
        echo "partner_load reported problems; see $OUT/partner-rss-load-$1-$2.json" >&2
    local after settled parts
    after=$(rss_kib "$SERVER_PID")
    sleep "$SETTLE_SECONDS"
    settled=$(rss_kib "$SERVER_PID")
    parts=$(rss_parts_kib "$SERVER_PID")
    stop_server
    printf '%s-%s\tloaded\t%s\tafter\t%s\tsettled\t%s\t%s\n' "$1" "$2" "$loaded" "$after" "$settled" "$parts" \
        >>"$OUT/partner-rss-runs.tsv"
}

# NAME: an empty data dir, before and after 8 regions' numbers.
fixed_run() {
    local data=$OUT/partner-rss-empty
    rm -rf "$data"
    BIN=${SERVERS[$1]}
    start_server "partner-rss-empty-$1" PROVISO_SUBJECT_SERVICE_TOKEN="$SUBJECT_TOKEN" \
        -- --listen 127.0.0.1:0 --data "$data"
    local empty
    empty=$(rss_kib "$SERVER_PID")
    for phone in +14155550123 +447911123456 +919812345678 +4915112345678 +5511912345678 +33612345678 \
        +8613912345678 +2348031234567; do
        curl -s -o /dev/null -X POST -H "Authorization: Bearer $SUBJECT_TOKEN" \
            -H 'content-type: application/json' -d "{\"phone\":\"$phone\"}" "$SERVER_URL/v1/subjects/resolve"
    done
    local phones
    phones=$(rss_kib "$SERVER_PID")
    stop_server
    printf '%s\tempty\t%s\tphones\t%s\n' "$1" "$empty" "$phones" >>"$OUT/partner-rss-runs.tsv"
}

: >"$OUT/partner-rss-runs.tsv"
record "BASELINE_BIN=$BASELINE_BIN ROUNDS=$ROUNDS bench/partner_rss.sh"
for round in $(seq 1 "$ROUNDS"); do
    for name in baseline current; do
        say "round $round: $name"
        loaded_run "$name" "$round"
    done
done
for name in baseline current; do fixed_run "$name"; done

python3 - "$OUT/partner-rss-runs.tsv" "$SUBJECTS" "$GIT_HEAD" "$GIT_DIRTY_FILES" <<'EOF' | tee "$OUT/partner-rss.txt"
import sys
runs, subjects, head, dirty = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"current: tree {head} (+{dirty} modified); {subjects:,} subjects")
print(f"{'run':14} {'RSS loaded MiB':>15} {'after load MiB':>15} {'B/subject':>10} {'settled MiB':>12} {'B/subject':>10}"
      f" {'of it anon B/subject':>21} {'file-backed MiB':>16}")
fixed = []
for line in open(runs):
    name, a, x, b, y, *rest = line.split()
    x, y = int(x), int(y)
    if a == "loaded":
        z, anon, mapped = int(rest[1]), int(rest[2]), int(rest[3])
        print(f"{name:14} {x / 1024:15.1f} {y / 1024:15.1f} {y * 1024 / subjects:10.1f} {z / 1024:12.1f} {z * 1024 / subjects:10.1f}"
              f" {anon * 1024 / subjects:21.1f} {mapped / 1024:16.1f}")
    else:
        fixed.append(f"{name:14} empty dir {x / 1024:.1f} MiB, after one number of 8 regions {y / 1024:.1f} MiB "
                     f"(= {y * 1024 / subjects:.1f} B/subject at {subjects:,})")
print("fixed part:")
print("\n".join(fixed))
EOF
