#!/usr/bin/env bash
# bench/audit_scrub.sh: what an erasure's scrub of the audit log costs as the
# disclosure history grows.
#
# For each history length in RECORDS: a small simulated workload is ingested
# into a fresh data dir, `proviso bench audit-history` appends that many
# synthetic disclosure records (HANDLES handles each, of made-up people no
# vault holds), one person is erased, and `proviso compact` runs under GNU
# time: it compacts the log, then scrubs every handle of the history (none
# is live). Peak RSS and wall time of the compact are printed for this
# tree's binary and, when BASELINE_BIN is set, for that binary on a copy of
# the same data dir (its audit log bytes after the scrub are compared: they
# must be the same).
#
# Parameters (environment): RECORDS ("50000 200000"), HANDLES (40),
# BASELINE_BIN (unset), SKIP_BUILD (0), BIN (target/release/proviso).
# Output: a table on stdout, also in bench/out/audit-scrub.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

OUT=bench/out
BIN=${BIN:-target/release/proviso}
SKIP_BUILD=${SKIP_BUILD:-0}
RECORDS=${RECORDS:-50000 200000}
HANDLES=${HANDLES:-40}
BASELINE_BIN=${BASELINE_BIN:-}
COMMANDS_FILE=$OUT/audit-scrub-commands.txt
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ -n "$TIME_BIN" ]] || { echo "GNU time (/usr/bin/time) is needed for the peak RSS" >&2; exit 1; }
build_binary
private_binary audit-scrub-proviso
if [[ -n "$BASELINE_BIN" ]]; then
    cp "$BASELINE_BIN" "$OUT/audit-scrub-baseline"
fi

DATA=$OUT/audit-scrub-data
EVENTS=$OUT/audit-scrub-events.ndjson
ROWS=$OUT/audit-scrub-rows.tsv
: >"$ROWS"
record "$BIN simulate --subjects 2000 --events 20000 --seed 5 --out $EVENTS"
"$BIN" simulate --subjects 2000 --events 20000 --seed 5 --out "$EVENTS" 2>/dev/null
phone=$(head -1 "$EVENTS" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["phone"])')
last_ts=$(tail -1 "$EVENTS" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["ts"])')
printf '{"type":"delete_account","ts":"%s","phone":"%s"}\n' "$last_ts" "$phone" >"$OUT/audit-scrub-erase.ndjson"

# NAME BINARY DIR RECORDS: one timed compact.
compact() {
    record "$2 compact --data $3"
    "$TIME_BIN" -f '%e\t%M' -o "$OUT/audit-scrub-time.tsv" "$2" compact --data "$3" >"$OUT/audit-scrub-compact-$1.log" 2>&1
    grep -q "Audit log scrubbed" "$OUT/audit-scrub-compact-$1.log" || {
        echo "$1: the compact did not scrub the audit log; see $OUT/audit-scrub-compact-$1.log" >&2
        exit 1
    }
    printf '%s\t%s\t%s\t%s\n' "$1" "$4" "$(du -sm "$3/audit" | cut -f1)" "$(cat "$OUT/audit-scrub-time.tsv")" >>"$ROWS"
}

for records in $RECORDS; do
    say "history of $records records"
    rm -rf "$DATA" "$DATA-baseline"
    "$BIN" ingest "$EVENTS" --data "$DATA" >/dev/null 2>&1
    record "$BIN bench audit-history --data $DATA --records $records --handles $HANDLES"
    "$BIN" bench audit-history --data "$DATA" --records "$records" --handles "$HANDLES" >/dev/null
    "$BIN" ingest "$OUT/audit-scrub-erase.ndjson" --data "$DATA" >/dev/null 2>&1
    if [[ -n "$BASELINE_BIN" ]]; then
        cp -r "$DATA" "$DATA-baseline"
        compact baseline "$OUT/audit-scrub-baseline" "$DATA-baseline" "$records"
    fi
    compact current "$BIN" "$DATA" "$records"
    if [[ -n "$BASELINE_BIN" ]]; then
        cmp -s "$DATA/audit/disclosures.log" "$DATA-baseline/audit/disclosures.log" || {
            echo "the two binaries scrubbed the audit log to different bytes" >&2
            exit 1
        }
    fi
done
rm -rf "$DATA" "$DATA-baseline"

python3 - "$ROWS" "$GIT_HEAD" "$HANDLES" <<'PY' | tee "$OUT/audit-scrub.txt"
import sys
rows, head, handles = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"tree at {head}; {handles} handles a record, every one scrubbed; `proviso compact` after one erasure")
print(f"{'binary':9} {'records':>9} {'audit MB':>9} {'wall s':>7} {'peak MiB':>9}")
for line in open(rows):
    name, records, audit_mb, wall, peak = line.rstrip("\n").split("\t")
    print(f"{name:9} {int(records):9,} {int(audit_mb):9,} {float(wall):7.1f} {int(peak) / 1024:9.0f}")
PY
