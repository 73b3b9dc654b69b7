#!/usr/bin/env bash
# bench/independent.sh: backtest an abuse rules file against the independent
# workload (bench/independent_traffic.py), over a few seeds, and print the
# per-behaviour table.
#
#   bench/independent.sh                      # the built-in rules
#   bench/independent.sh my-rules.toml        # a candidate rules file
#
# For each seed: generate (events + labels), `proviso ingest` into a fresh
# data dir (stops if any line is rejected), `proviso rules backtest RULES
# --labels ... --json`. Then one table: per labelled behaviour, how many
# accounts each seed had and how many the rules acted on.
#
# The default RULES is the built-in rules file, the one the binary embeds
# (README: src/processors/abuse/default_rules.toml); `rules backtest` needs a
# file, so it is passed by path.
#
# Environment: BIN (proviso binary; default target/release/proviso), SEEDS
# ("1 2 3"), PEOPLE (1500), DAYS (10), OUT (bench/out/independent).
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=${1:-src/processors/abuse/default_rules.toml}
BIN=${BIN:-target/release/proviso}
SEEDS=${SEEDS:-1 2 3}
PEOPLE=${PEOPLE:-1500}
DAYS=${DAYS:-10}
OUT=${OUT:-bench/out/independent}

[[ -x "$BIN" ]] || { echo "no proviso binary at $BIN (cargo build --release, or set BIN)" >&2; exit 1; }
[[ -f "$RULES" ]] || { echo "no rules file $RULES" >&2; exit 1; }
mkdir -p "$OUT"
echo "rules: $RULES  binary: $BIN  seeds: $SEEDS  people: $PEOPLE  days: $DAYS" >&2

reports=()
for seed in $SEEDS; do
    dir=$OUT/seed-$seed
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 bench/independent_traffic.py --seed "$seed" --people "$PEOPLE" --days "$DAYS" \
        --out "$dir/events.ndjson" --labels "$dir/labels.ndjson" >"$dir/generate.txt"
    "$BIN" ingest "$dir/events.ndjson" --data "$dir/data" --rejects "$dir/rejects.ndjson" --json \
        >"$dir/ingest.json" 2>"$dir/ingest.stderr"
    python3 - "$dir/ingest.json" "$seed" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"seed {sys.argv[2]}: ingest accepted {r['accepted']} rejected {r['rejected']}", file=sys.stderr)
if r["rejected"]:
    sys.exit(f"rejected lines: {r['rejected_by_reason']} {r['first_errors']}")
EOF
    "$BIN" rules backtest "$RULES" --labels "$dir/labels.ndjson" --data "$dir/data" --json \
        >"$dir/backtest.json" 2>"$dir/backtest.stderr"
    reports+=("$dir/backtest.json")
done

python3 - "${reports[@]}" <<'EOF'
import json, sys
reports = [json.load(open(p)) for p in sys.argv[1:]]
seeds = [p.split("/")[-2] for p in sys.argv[1:]]
print("%-24s %-5s %s   %s" % ("behaviour", "label", "  ".join(f"{s:>14}" for s in seeds), "all seeds"))
rows = {}
for i, rep in enumerate(reports):
    for b in rep["by_behaviour"]:
        rows.setdefault((not b["spam"], b["behaviour"]), [None] * len(reports))[i] = (b["detected"], b["subjects"])
for (ham, name), cells in sorted(rows.items()):
    det = sum(c[0] for c in cells if c)
    tot = sum(c[1] for c in cells if c)
    shown = "  ".join(f"{(f'{c[0]}/{c[1]}' if c else '-'):>14}" for c in cells)
    print("%-24s %-5s %s   %d/%d %s" % (name, "ham" if ham else "spam", shown, det, tot,
                                        f"({100 * det / tot:.0f}% {'flagged' if ham else 'caught'})" if tot else ""))
print()
for s, rep in zip(seeds, reports):
    print(f"{s}: precision {rep['precision']:.3f}  recall {rep['recall']:.3f}  "
          f"(tp {rep['true_positives']}, fp {rep['false_positives']}, fn {rep['false_negatives']})  "
          f"delay p50 {rep['delay_p50_seconds']:.0f}s p90 {rep['delay_p90_seconds']:.0f}s")
EOF
