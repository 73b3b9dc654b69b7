#!/usr/bin/env bash
# bench/compact_scale.sh: what an erasure's compaction costs as the log grows.
#
# For each NDJSON file in FILES: a fresh data dir ingests it
# (`proviso ingest`), then one `delete_account` of the file's first sender,
# dated at the file's last event; then `proviso compact` runs on it and is
# timed (wall, user and system CPU, peak RSS). Compaction rewrites the whole
# log without the person and rebuilds state from the new log (docs/privacy.md,
# "Erasure"), so its cost follows the log's size, not the person's.
#
# Parameters (environment): FILES (default: the 1× file of bench/compare.sh
# and the 4× file of its 4× run, those present), SKIP_BUILD (0), BIN
# (target/release/proviso). The files come from `proviso simulate` (see
# bench/compare.sh); this script does not make them.
# Output: a table on stdout, also in bench/out/compact-scale.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

OUT=bench/out
BIN=${BIN:-target/release/proviso}
SKIP_BUILD=${SKIP_BUILD:-0}
COMMANDS_FILE=$OUT/compact-scale-commands.txt
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
build_binary
private_binary compact-scale-proviso

if [[ -z "${FILES:-}" ]]; then
    FILES=$(ls bench/out/events-5000000-100000-30-7.ndjson bench/out4x/events-20000000-400000-90-7.ndjson 2>/dev/null || true)
fi
[[ -n "$FILES" ]] || {
    echo "no event files: run bench/compare.sh (and its 4× run) first, or set FILES" >&2
    exit 1
}

DATA=$OUT/compact-scale-data
ROWS=$OUT/compact-scale-rows.tsv
: >"$ROWS"
for file in $FILES; do
    say "$file"
    rm -rf "$DATA"
    record "$BIN ingest $file --data $DATA"
    "$BIN" ingest "$file" --data "$DATA" >"$OUT/compact-scale-ingest.log" 2>&1
    events=$(wc -l <"$file")
    first_phone=$(head -1 "$file" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["phone"])')
    last_ts=$(tail -1 "$file" | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["ts"])')
    printf '{"type":"delete_account","ts":"%s","phone":"%s"}\n' "$last_ts" "$first_phone" >"$OUT/compact-scale-erase.ndjson"
    "$BIN" ingest "$OUT/compact-scale-erase.ndjson" --data "$DATA" >>"$OUT/compact-scale-ingest.log" 2>&1
    log_mb=$(du -sm "$DATA/log" | cut -f1)
    record "$BIN compact --data $DATA"
    /usr/bin/time -f '%e\t%U\t%S\t%M' -o "$OUT/compact-scale-time.tsv" "$BIN" compact --data "$DATA" \
        >"$OUT/compact-scale-compact.log" 2>&1
    printf '%s\t%s\t%s\t%s\n' "$file" "$events" "$log_mb" "$(cat "$OUT/compact-scale-time.tsv")" >>"$ROWS"
done
rm -rf "$DATA"

python3 - "$ROWS" "$GIT_HEAD" <<'EOF' | tee "$OUT/compact-scale.txt"
import sys
rows, head = sys.argv[1], sys.argv[2]
print(f"binary from {head}; one erasure, then `proviso compact`")
print(f"{'file':52} {'events':>11} {'log MB':>7} {'wall s':>7} {'CPU s':>7} {'us/event':>9} {'MB/s':>6} {'peak MiB':>9}")
for line in open(rows):
    name, events, log_mb, wall, user, system, peak = line.split("\t")
    events, log_mb, wall, cpu = int(events), int(log_mb), float(wall), float(user) + float(system)
    print(f"{name:52} {events:11,} {log_mb:7,} {wall:7.1f} {cpu:7.1f} {wall * 1e6 / events:9.2f} "
          f"{log_mb / wall:6.1f} {int(peak) / 1024:9.0f}")
EOF
