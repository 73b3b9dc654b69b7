#!/usr/bin/env bash
# bench/nats.sh: how fast one JetStream stream takes proviso's messages on
# this machine (issue 16: the NATS throughput per stream behind
# docs/scale.md).
#
# Starts nats-server 2.15.1 (target/nats/nats-server, as `.ci/run` installs
# it, or $NATS_SERVER) on a free loopback port with JetStream in a fresh
# bench/out/nats/js and `sync_interval: always` (every acknowledged message
# fsynced, as cluster mode needs), then runs `proviso bench nats-publish`
# once per (message size, publishes in flight) pair, each on a fresh stream
# directory.
#
# Parameters (environment): SIZES (4096 65536 524288: bytes per message),
# IN_FLIGHT (1 64), MEGABYTES (400: bytes published per run, so every size
# writes the same amount), PARTITIONS (64), SKIP_BUILD (0).
# Outputs: bench/out/nats-*.json, the table in bench/out/nats-results.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

SIZES=${SIZES:-4096 65536 524288}
IN_FLIGHT=${IN_FLIGHT:-1 64}
MEGABYTES=${MEGABYTES:-400}
PARTITIONS=${PARTITIONS:-64}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
COMMANDS_FILE=$OUT/nats-commands.txt
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
rm -f "$OUT"/nats-run-*.json "$OUT/nats-results.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
build_binary
need_nats

NATS_DIR=$OUT/nats
trap stop_nats EXIT

"$NATS" --version >&2
for size in $SIZES; do
    for flight in $IN_FLIGHT; do
        messages=$((MEGABYTES * 1000000 / size))
        start_nats
        say "$messages messages of $size bytes, $flight in flight"
        CMD=("$BIN" bench nats-publish --nats "$NATS_URL" --messages "$messages" --bytes "$size"
            --partitions "$PARTITIONS" --in-flight "$flight")
        record "${CMD[*]}"
        "${CMD[@]}" >"$OUT/nats-run-$size-$flight.json"
    done
done
stop_nats

export OUT
python3 - <<'PY' | tee "$OUT/nats-results.txt"
import glob, json, os
out = os.environ["OUT"]
print(f"{'bytes':>8} {'in flight':>9} {'messages/s':>11} {'MB/s':>8} {'events/s @100 B':>16} {'ack p50/p99 ms':>16} {'client cpu s':>12}")
runs = [json.load(open(p)) for p in glob.glob(os.path.join(out, "nats-run-*.json"))]
for r in sorted(runs, key=lambda r: (r["bytes_per_message"], r["in_flight"])):
    ack = r.get("ack_ms") or {}
    print(f"{r['bytes_per_message']:>8} {r['in_flight']:>9} {r['messages_per_second']:>11,.0f} {r['megabytes_per_second']:>8.1f} "
          f"{r['events_per_second_at_100_bytes']:>16,.0f} {str(ack.get('p50'))+'/'+str(ack.get('p99')):>16} {r['client_cpu_s']:>12}")
PY
