#!/usr/bin/env bash
# bench/fsync_under_ingest.sh: how long ONE small durable write takes on this
# machine's disk, quiet and while `proviso ingest` runs at full rate.
#
# Why: issue 14 asks for friend suggestions answered within 5 ms at the
# 99th percentile while ingest runs at full rate. A disclosure is answered
# only after its audit record is on disk (never a disclosure without its
# audit record), so its answer can be no faster than one small fdatasync
# under that load. This script measures that floor, outside proviso: a
# probe appends 300 bytes to one file (or FILES files, one after another)
# and fdatasyncs, N times with 2 ms between, first on a quiet machine, then
# while `proviso ingest EVENTS_FILE` writes a fresh data dir on the same
# disk. It prints the percentiles of each, in milliseconds.
#
# MODES lists the ways to write, each measured in turn in every round:
# "overwrite" writes the same records into a file whose blocks were
# written (zeros) and fsynced before the timing starts, so each fdatasync
# carries data only: no size change, no block allocation, nothing for the
# file system's journal. "append" grows the file, as
# proviso's outputs do today.
#
# Parameters (environment): EVENTS_FILE (the newest
# bench/out/partner-events-*.ndjson, from bench/partner.sh), N (2000), FILES
# (1), ROUNDS (2), MODES ("append overwrite"), SKIP_BUILD (0).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

N=${N:-2000}
FILES=${FILES:-1}
MODES=${MODES:-append overwrite}
ROUNDS=${ROUNDS:-2}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=bench/out
BIN=target/release/proviso
EVENTS_FILE=${EVENTS_FILE:-$(ls -t "$OUT"/partner-events-*.ndjson 2>/dev/null | head -1 || true)}
[[ -n "$EVENTS_FILE" && -f "$EVENTS_FILE" ]] || {
    echo "no events file: run bench/partner.sh first, or set EVENTS_FILE" >&2
    exit 1
}
[[ "$SKIP_BUILD" == 1 ]] || cargo build --release --locked
mkdir -p "$OUT"
PROBE_DIR=$OUT/fsync-probe
DATA=$OUT/fsync-ingest-data

probe() {
    python3 - "$PROBE_DIR" "$N" "$FILES" "$1" "$2" <<'PY'
import os, sys, time
where, n, files, label, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
os.makedirs(where, exist_ok=True)
fds = [os.open(os.path.join(where, f"probe{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for i in range(files)]
record = b"x" * 299 + b"\n"
if mode == "overwrite":
    for fd in fds:
        os.write(fd, bytes(len(record) * n))
        os.fsync(fd)
took = []
for i in range(n):
    started = time.perf_counter()
    for fd in fds:
        if mode == "overwrite":
            os.pwrite(fd, record, i * len(record))
        else:
            os.write(fd, record)
        os.fdatasync(fd)
    took.append((time.perf_counter() - started) * 1000)
    time.sleep(0.002)
took.sort()
at = lambda q: took[min(len(took) - 1, int(q * len(took)))]
print(f"{label + '-' + mode:<22} {files:>5} {n:>6} {at(.5):>7.2f} {at(.9):>7.2f} {at(.99):>7.2f} {took[-1]:>7.2f}")
PY
}

echo "events: $EVENTS_FILE; binary: $BIN ($(git rev-parse --short HEAD))"
echo "run                    files   syncs     p50     p90     p99     max (ms)"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        probe "quiet-$round" "$mode"
        rm -rf "$DATA"
        "$BIN" ingest "$EVENTS_FILE" --data "$DATA" >"$OUT/fsync-ingest.log" 2>&1 &
        ingest=$!
        sleep 1
        probe "ingesting-$round" "$mode"
        if kill -0 "$ingest" 2>/dev/null; then still=yes; else still=no; fi
        wait "$ingest"
        echo "                       (ingest still running when the probe ended: $still; $(tail -1 "$OUT/fsync-ingest.log"))"
    done
done
rm -rf "$DATA" "$PROBE_DIR"
