#!/usr/bin/env bash
# bench/phone_memory.sh: what phone numbers of every region cost in memory.
#
# `proviso bench phone-agreement --dump` writes NUMBERS generated numbers of
# every region of the metadata with proviso's answers; the valid ones become
# one `register` event each (their E.164 form as written), and the same
# count of numbers of one region (+1 415, US) makes the control file. Each
# binary (BASELINE_BIN when set, then this tree's) ingests both into a fresh
# data dir; the peak RSS of each ingest (GNU time) is printed. The state of
# a few thousand people is the same in both files, so the difference is what
# the phone metadata and its compiled patterns hold once numbers of every
# region have come by.
#
# Parameters (environment): NUMBERS (20000), SEED (11), BASELINE_BIN
# (unset: only this tree's binary), SKIP_BUILD (0).
# Output: a table on stdout, also in bench/out/phone-memory.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

NUMBERS=${NUMBERS:-20000}
SEED=${SEED:-11}
BASELINE_BIN=${BASELINE_BIN:-}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=bench/out
BIN=target/release/proviso
COMMANDS_FILE=$OUT/phone-memory-commands.txt
mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ -n "$TIME_BIN" ]] || { echo "GNU time (/usr/bin/time) is needed for the peak RSS" >&2; exit 1; }
build_binary
private_binary phone-memory-current

DUMP=$OUT/phone-memory-numbers.ndjson
record "$BIN bench phone-agreement --numbers $NUMBERS --seed $SEED --dump $DUMP"
"$BIN" bench phone-agreement --numbers "$NUMBERS" --seed "$SEED" --dump "$DUMP" >/dev/null
python3 - "$DUMP" "$OUT/phone-memory-all.ndjson" "$OUT/phone-memory-one.ndjson" <<'EOF'
import json, random, sys
dump, every, one = sys.argv[1:]
valid = [n for n in map(json.loads, open(dump)) if n["valid"] and n["e164"]]
ts = 1764806400000
with open(every, "w") as out:
    for i, n in enumerate(valid):
        out.write(json.dumps({"type": "register", "ts": ts + i, "phone": n["e164"], "device": f"d{i}", "platform": "android"}) + "\n")
rng = random.Random(1)
with open(one, "w") as out:
    for i in range(len(valid)):
        phone = f"+1415{rng.randrange(2000000, 9999999)}"
        out.write(json.dumps({"type": "register", "ts": ts + i, "phone": phone, "device": f"d{i}", "platform": "android"}) + "\n")
print(f"{len(valid):,} valid numbers of {len({n['region'] for n in valid})} regions", file=sys.stderr)
EOF

declare -a NAMES=(current)
declare -A SERVERS=([current]=$BIN)
if [[ -n "$BASELINE_BIN" ]]; then
    cp "$BASELINE_BIN" "$OUT/phone-memory-baseline"
    SERVERS[baseline]=$OUT/phone-memory-baseline
    NAMES=(baseline current)
fi
RESULTS=$OUT/phone-memory.txt
printf '%-10s %18s %18s %12s\n' binary "one region (MiB)" "every region (MiB)" "difference" | tee "$RESULTS"
for name in "${NAMES[@]}"; do
    declare -A PEAK=()
    for file in one all; do
        rm -rf "$OUT/phone-memory-data"
        record "${SERVERS[$name]} ingest $OUT/phone-memory-$file.ndjson --data $OUT/phone-memory-data"
        "$TIME_BIN" -f '%M' -o "$OUT/phone-memory-$name-$file.time" \
            "${SERVERS[$name]}" ingest "$OUT/phone-memory-$file.ndjson" --data "$OUT/phone-memory-data" >/dev/null 2>&1 || true
        PEAK[$file]=$(tail -n 1 "$OUT/phone-memory-$name-$file.time")
    done
    awk -v n="$name" -v a="${PEAK[one]}" -v b="${PEAK[all]}" \
        'BEGIN { printf "%-10s %18.1f %18.1f %12.1f\n", n, a / 1024, b / 1024, (b - a) / 1024 }' | tee -a "$RESULTS"
done
