#!/usr/bin/env bash
# bench/audit_scrub.sh: what a long disclosure history costs a node: its
# start-up and memory, and an erasure's scrub of the audit log.
#
# For each history length in RECORDS: a small simulated workload is ingested
# into a fresh data dir, `proviso bench audit-history` appends that many
# synthetic disclosure records (HANDLES handles each, of made-up people no
# vault holds), and one person is erased. Then, for this tree's binary and,
# when BASELINE_BIN is set, that binary (each on its own copy of the data
# dir): `proviso serve` is started and timed until it answers /healthz, and
# its VmRSS read a second later; then `proviso compact` runs under GNU time:
# it compacts the log, then scrubs every handle of the history (none is
# live). The two binaries' audit logs after the scrub are compared: they
# must be the same bytes.
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

# NAME BINARY DIR: one timed start of `proviso serve`; sets STARTED.
serve_once() {
    BIN=$2
    record "$2 serve --listen 127.0.0.1:0 --data $3"
    start_server "audit-scrub-$1" -- --listen 127.0.0.1:0 --data "$3"
    sleep 1
    STARTED="$SERVER_STARTUP_S\t$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status")"
    stop_server
}

# NAME BINARY DIR RECORDS: one timed compact.
compact() {
    record "$2 compact --data $3"
    "$TIME_BIN" -f '%e\t%M' -o "$OUT/audit-scrub-time.tsv" "$2" compact --data "$3" >"$OUT/audit-scrub-compact-$1.log" 2>&1
    grep -q "Audit log scrubbed" "$OUT/audit-scrub-compact-$1.log" || {
        echo "$1: the compact did not scrub the audit log; see $OUT/audit-scrub-compact-$1.log" >&2
        exit 1
    }
    printf '%s\t%s\t%b\t%b\t%s\n' "$1" "$4" "$(du -sm "$3/audit/disclosures.log" | cut -f1)\t$( (du -sm "$3/audit/index" 2>/dev/null || echo 0) | cut -f1)" "$STARTED" \
        "$(cat "$OUT/audit-scrub-time.tsv")" >>"$ROWS"
}

for records in $RECORDS; do
    say "history of $records records"
    rm -rf "$DATA" "$DATA-baseline"
    "$BIN" ingest "$EVENTS" --data "$DATA" >/dev/null 2>&1
    record "$BIN bench audit-history --data $DATA --records $records --handles $HANDLES"
    "$BIN" bench audit-history --data "$DATA" --records "$records" --handles "$HANDLES" >/dev/null
    # Without the vault's list of erased handles the dir owes a scrub of the
    # whole log (as a restored backup, or a dir from before the list, does),
    # so the compact below scrubs every made-up handle, as the baseline does.
    rm -f "$DATA/vault/scrub-owed.bin"
    "$BIN" ingest "$OUT/audit-scrub-erase.ndjson" --data "$DATA" >/dev/null 2>&1
    current_bin=$BIN
    if [[ -n "$BASELINE_BIN" ]]; then
        cp -r "$DATA" "$DATA-baseline"
        serve_once baseline "$OUT/audit-scrub-baseline" "$DATA-baseline"
        compact baseline "$OUT/audit-scrub-baseline" "$DATA-baseline" "$records"
    fi
    serve_once current "$current_bin" "$DATA"
    compact current "$current_bin" "$DATA" "$records"
    BIN=$current_bin
    if [[ -n "$BASELINE_BIN" ]]; then
        cmp -s "$DATA/audit/disclosures.log" "$DATA-baseline/audit/disclosures.log" || {
            echo "the two binaries scrubbed the audit log to different bytes" >&2
            exit 1
        }
    fi
done
rm -rf "$DATA" "$DATA-baseline"

# An erasure's scrub in place (from the vault's list of the erased handles'
# keys) against the whole-log scrub of a copy, in one process, same log:
# `proviso bench audit-history --erase N` checks both leave the same bytes.
ERASE_ROWS=$OUT/audit-scrub-erase-rows.tsv
: >"$ERASE_ROWS"
for records in $RECORDS; do
    for erase in 1 100; do
        rm -rf "$DATA"
        record "$BIN bench audit-history --data $DATA --records $records --handles $HANDLES --erase $erase"
        "$BIN" bench audit-history --data "$DATA" --records "$records" --handles "$HANDLES" --erase "$erase" 2>/dev/null |
            python3 -c 'import json, sys; r = json.load(sys.stdin); e = r["erase"]
print("\t".join(str(v) for v in (r["records_appended"], e["people_erased"], e["handles_scrubbed"], e["whole_scrub_s"], e["in_place_s"])))' \
            >>"$ERASE_ROWS"
    done
done
rm -rf "$DATA"

python3 - "$ROWS" "$GIT_HEAD" "$HANDLES" "$ERASE_ROWS" <<'PY' | tee "$OUT/audit-scrub.txt"
import sys
rows, head, handles = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"tree at {head}; {handles} handles a record, every one scrubbed; `proviso compact` after one erasure")
print(f"{'binary':9} {'records':>9} {'log MB':>7} {'index MB':>9} {'start s':>8} {'RSS MiB':>8} {'compact s':>10} {'compact peak MiB':>17}")
for line in open(rows):
    name, records, log_mb, index_mb, start, rss, wall, peak = line.rstrip("\n").split("\t")
    print(f"{name:9} {int(records):9,} {int(log_mb):7,} {int(index_mb):9,} {float(start):8.2f} {int(rss) / 1024:8.1f} "
          f"{float(wall):10.1f} {int(peak) / 1024:17.0f}")
print()
print("an erasure's scrub: the whole log (a copy) against in place from the erased handles' keys, same bytes")
print(f"{'records':>9} {'erased':>7} {'handles':>8} {'whole s':>8} {'in place s':>11} {'ratio':>7}")
for line in open(sys.argv[4]):
    records, erased, handles, whole, in_place = line.rstrip("\n").split("\t")
    print(f"{int(records):9,} {int(erased):7,} {int(handles):8,} {float(whole):8.2f} {float(in_place):11.3f} "
          f"{float(whole) / max(float(in_place), 1e-3):7.0f}")
PY
