#!/usr/bin/env bash
# bench/abuse.sh: what the abuse rule engine costs, how fast it evaluates,
# how good the default rules are, and how soon a partner sees an action.
#
# What is measured:
# 1. Ingest throughput with and without rules. `proviso ingest FILE --json`
#    with the built-in default rules, against the same command with
#    `--rules bench/out/no-rules.toml`, a rules file holding only a comment
#    (valid: no rules, so no window state is kept and nothing is evaluated).
#    The ratio with/without is the share of ingest speed the rule engine
#    leaves (target >= 0.85, issue 15; it was 0.70 before).
# 2. Rule engine figures from `proviso rules backtest` of the default rules
#    over the log of a with-rules ingest: rule evaluations per second
#    (rule_evaluations / replay_seconds; replay_seconds covers all state
#    processing, usage and links included, so this is a lower bound), heap
#    bytes of window state per subject holding any, and precision, recall and
#    detection delay (event time) against the simulator's labels.
# 3. Action latency (bench/abuse_latency.py): on a running `proviso serve`
#    with a partner, fresh spammers send 30 messages to strangers within
#    15 s of registering; the 30th fires `fresh_account_burst` (ban + share).
#    The partner polls its security feed; the figures are the time from the
#    server's 200 for that 30th event (and from sending it) to the partner
#    reading the record.
#
# Why the comparison is fair:
# - Same input, same binary, same machine, same run: the with/without rules
#   ingests read the same file from a warm page cache, each into a fresh
#   (rm -rf) data dir, with the same flags but `--rules`.
# - Alternating, best of REPEATS each: the order flips every round (rules,
#   no rules; then no rules, rules; ...), so drift (page cache, thermal,
#   other load) does not favour one side. Every repeat is kept in the JSON.
# - Both durable: each ingest returns only after its log is fsync'd; the
#   throughput is the `events_per_second` proviso ingest prints (lines over
#   its own `seconds`), the process wall time is reported too.
# - Contention is visible: for each timed step, the CPU-seconds the machine
#   spent busy minus the step's own user+system time (GNU time, /proc) is
#   the work of *other* processes. About 0 on a quiet machine; well above 0
#   (a concurrent `cargo build`) means that step's figures are not
#   trustworthy. The report flags it.
# - The latency client (Python) shares the 2 cores with the server, and polls
#   back to back over a keep-alive connection; its figures include one HTTP
#   round trip on loopback, so they are an upper bound on the server side.
#
# Parameters (environment): EVENTS (5000000), SUBJECTS (100000), DAYS (30),
# SEED (7), REPEATS (2: ingests per side), BURSTS (300: spammers in the
# latency test), PRELOAD_LINES (500000: workload lines ingested into the
# latency test's data dir before serving; 0 for none), WAIT_QUIET (300: before
# each timed step, wait at most this many seconds while a cargo/rustc process
# runs; 0 never waits), SKIP_BUILD (0).
# Outputs: bench/out/ (gitignored); summary in bench/out/abuse-results.json,
# table in bench/out/abuse-results.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

EVENTS=${EVENTS:-5000000}
SUBJECTS=${SUBJECTS:-100000}
DAYS=${DAYS:-30}
SEED=${SEED:-7}
START=2026-01-01
REPEATS=${REPEATS:-2}
BURSTS=${BURSTS:-300}
PRELOAD_LINES=${PRELOAD_LINES:-500000}
WAIT_QUIET=${WAIT_QUIET:-300}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
PY=python3
EVENTS_FILE=$OUT/abuse-events-$EVENTS.ndjson
LABELS_FILE=$OUT/abuse-labels-$EVENTS.ndjson
DEFAULT_RULES=src/processors/abuse/default_rules.toml
NO_RULES=$OUT/no-rules.toml
BENCH_CONFIG=$OUT/abuse-bench.toml
COMMANDS_FILE=$OUT/abuse-commands.txt
STEPS_FILE=$OUT/abuse-steps.json
ADMIN_TOKEN=bench-admin-token-0000001
INGEST_TOKEN=bench-ingest-token-000001
REVIEWER_TOKEN=bench-reviewer-token-00001
PARTNER=benchnet
PARTNER_TOKEN=bench-partner-token-00000001
NPROC=$(nproc)

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# Results of an earlier run must not leak into this one's report.
rm -f "$OUT"/abuse-ingest-*.json "$OUT"/abuse-ingest-*.time "$OUT"/abuse-ingest-*.stderr \
    "$OUT"/abuse-{backtest,latency,preload,steps,results}.json "$OUT"/abuse-backtest.time "$OUT/abuse-results.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# 1. Build, and run a private copy of the binary from here on.
build_binary
private_binary abuse-proviso

# 2. Data, generated once.
say "2. workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE" --labels "$LABELS_FILE")
record "${GEN_CMD[*]}"
generate_workload abuse-simulate.stderr "$EVENTS_FILE" "$LABELS_FILE"
FILE_BYTES=$(stat -c %s "$EVENTS_FILE")
FILE_LINES=$(wc -l <"$EVENTS_FILE")
LABEL_LINES=$(wc -l <"$LABELS_FILE")
echo "$EVENTS_FILE: $FILE_BYTES bytes, $FILE_LINES lines; $LABEL_LINES labels" >&2

# 3. The empty rules file and the latency test's config.
printf '# bench/abuse.sh: no rules (the ingest baseline without the rule engine).\n' >"$NO_RULES"
cat >"$BENCH_CONFIG" <<EOF
# bench/abuse.sh: one partner network reading the security feed.
[[partners]]
name = "$PARTNER"
purposes = ["security"]
tokens = ["$PARTNER_TOKEN"]
EOF
record "$BIN rules check $NO_RULES"
"$BIN" rules check "$NO_RULES" >&2
record "$BIN rules check $DEFAULT_RULES"
"$BIN" rules check "$DEFAULT_RULES" >&2

# 4. Ingest with and without rules, alternating, REPEATS rounds.
say "4. ingest with default rules vs --rules $NO_RULES, $REPEATS rounds, alternating"
ingest_once() { # SIDE ROUND
    local side=$1 round=$2 data=$OUT/abuse-data-$1
    local cmd=("$BIN" ingest "$EVENTS_FILE" --data "$data" --json)
    [[ "$side" == norules ]] && cmd+=(--rules "$NO_RULES")
    rm -rf "$data"
    record "rm -rf $data && ${cmd[*]}"
    timed_step "ingest-$side-$round" "abuse-ingest-$side-$round" "${cmd[@]}"
    "$PY" - "$OUT/abuse-ingest-$side-$round.json" "$side" "$round" "$STEP_WALL_S" <<'EOF' >&2
import json, sys
s = json.load(open(sys.argv[1]))
print(f"ingest {sys.argv[2]:>7} round {sys.argv[3]}: {s['events_per_second']:,.0f} lines/s, "
      f"{s['seconds']:.2f}s (wall {float(sys.argv[4]):.2f}s), accepted {s['accepted']:,}, rejected {s['rejected']:,}")
EOF
}
for round in $(seq 1 "$REPEATS"); do
    if ((round % 2 == 1)); then
        ingest_once rules "$round"
        ingest_once norules "$round"
    else
        ingest_once norules "$round"
        ingest_once rules "$round"
    fi
done

# 5. Backtest of the default rules over the with-rules data dir.
say "5. rules backtest of the default rules on $OUT/abuse-data-rules"
BT_CMD=("$BIN" rules backtest "$DEFAULT_RULES" --labels "$LABELS_FILE" --data "$OUT/abuse-data-rules" --json)
record "${BT_CMD[*]}"
timed_step backtest abuse-backtest "${BT_CMD[@]}"

# 6. Action latency on a served data dir with background state.
say "6. action latency: $BURSTS spammers, partner $PARTNER polling its security feed"
LAT_DATA=$OUT/abuse-serve-data
rm -rf "$LAT_DATA"
if ((PRELOAD_LINES > 0)); then
    record "head -n $PRELOAD_LINES $EVENTS_FILE | $BIN ingest - --data $LAT_DATA --config $BENCH_CONFIG --json"
    head -n "$PRELOAD_LINES" "$EVENTS_FILE" |
        "$BIN" ingest - --data "$LAT_DATA" --config "$BENCH_CONFIG" --json >"$OUT/abuse-preload.json" \
            2>"$OUT/abuse-preload.stderr" || { cat "$OUT/abuse-preload.stderr" >&2; exit 1; }
fi
record "PROVISO_ADMIN_TOKEN=$ADMIN_TOKEN PROVISO_INGEST_TOKEN=$INGEST_TOKEN PROVISO_REVIEWER_TOKEN=$REVIEWER_TOKEN $BIN serve --listen 127.0.0.1:0 --data $LAT_DATA --config $BENCH_CONFIG"
start_server abuse-serve PROVISO_ADMIN_TOKEN="$ADMIN_TOKEN" PROVISO_INGEST_TOKEN="$INGEST_TOKEN" \
    PROVISO_REVIEWER_TOKEN="$REVIEWER_TOKEN" -- --listen 127.0.0.1:0 --data "$LAT_DATA" --config "$BENCH_CONFIG"
SERVE_STARTUP=$SERVER_STARTUP_S
LAT_CMD=("$PY" bench/abuse_latency.py --url "$SERVER_URL" --ingest-token "$INGEST_TOKEN" --partner "$PARTNER"
    --partner-token "$PARTNER_TOKEN" --bursts "$BURSTS" --pid "$SERVER_PID")
record "${LAT_CMD[*]}"
wait_quiet
LAT_COMPILERS=$(compilers_running)
"${LAT_CMD[@]}" >"$OUT/abuse-latency.json" || echo "abuse_latency reported errors; see $OUT/abuse-latency.json" >&2
LAT_HEALTHZ=$(curl -fsS "$SERVER_URL/healthz" || echo null)
stop_server

# 7. Results.
say "7. results"
export OUT EVENTS SUBJECTS DAYS SEED REPEATS BURSTS PRELOAD_LINES NPROC EVENTS_FILE LABELS_FILE FILE_BYTES \
    FILE_LINES LABEL_LINES SERVE_STARTUP LAT_HEALTHZ LAT_COMPILERS GIT_HEAD GIT_DIRTY_FILES BIN_MTIME BIN_SHA256
"$PY" - <<'EOF' | tee "$OUT/abuse-results.txt"
import json, os, sys

sys.path.insert(0, "bench")  # the working directory is the repository root
from benchlib import binary, fmt, load_json, machine, print_table, read_commands, read_steps, step_contention

e = os.environ
out = e["OUT"]
repeats = int(e["REPEATS"])


def load(name):
    return load_json(out, name)


steps = read_steps(os.path.join(out, "abuse-steps.json"))

runs = {"rules": [], "norules": []}
for side in runs:
    for r in range(1, repeats + 1):
        summary = load(f"abuse-ingest-{side}-{r}.json")
        step = steps.get(f"ingest-{side}-{r}", {})
        runs[side].append({
            "round": r,
            "events_per_second": round(summary["events_per_second"], 1),
            "seconds": round(summary["seconds"], 3),
            "wall_s": step.get("wall_s"),
            "accepted": summary["accepted"],
            "rejected": summary["rejected"],
            "rejected_by_reason": summary["rejected_by_reason"],
            "first_errors": summary["first_errors"][:3],
            "own_cpu_s": step.get("own_cpu_s"),
            "other_cpu_s": step.get("other_cpu_s"),
            "peak_rss_bytes": step.get("peak_rss_bytes"),
            "compilers_at_start": step.get("compilers_at_start"),
        })


def best(side):
    return max(runs[side], key=lambda run: run["events_per_second"])


def spread(side):
    values = [run["events_per_second"] for run in runs[side]]
    return round((max(values) - min(values)) / max(values), 3) if values else None


with_rules, without = best("rules"), best("norules")
ratio = round(with_rules["events_per_second"] / without["events_per_second"], 3)

bt = load("abuse-backtest.json") or {}
bt_step = steps.get("backtest", {})
evals_per_s = (bt["rule_evaluations"] / bt["replay_seconds"]) if bt.get("replay_seconds") else None
lat = load("abuse-latency.json") or {}
preload = load("abuse-preload.json")
healthz = json.loads(e["LAT_HEALTHZ"]) if e.get("LAT_HEALTHZ", "null") != "null" else None
commands = read_commands(os.path.join(out, "abuse-commands.txt"))

noisy = step_contention(steps)
if lat.get("other_cpu_s") is not None and lat["other_cpu_s"] > 1.0:
    noisy.append(f"latency: other processes used {lat['other_cpu_s']} CPU-s")
if int(e.get("LAT_COMPILERS") or 0):
    noisy.append(f"latency: {e['LAT_COMPILERS']} rustc/cargo process(es) running at its start")

results = {
    "events": int(e["EVENTS"]), "subjects": int(e["SUBJECTS"]), "days": int(e["DAYS"]), "seed": int(e["SEED"]),
    "file": e["EVENTS_FILE"], "file_bytes": int(e["FILE_BYTES"]), "lines": int(e["FILE_LINES"]),
    "labels_file": e["LABELS_FILE"], "labels": int(e["LABEL_LINES"]),
    "machine": machine(e),
    "binary": binary(e),
    "repeats": repeats,
    "ingest_rules_events_per_second": with_rules["events_per_second"],
    "ingest_norules_events_per_second": without["events_per_second"],
    "ingest_ratio_rules_over_norules": ratio,
    "ingest_ratio_target": 0.85,
    "ingest_ratio_meets_target": ratio >= 0.85,
    "ingest_rules_spread": spread("rules"),
    "ingest_norules_spread": spread("norules"),
    "ingest_runs": runs,
    "backtest": bt,
    "backtest_wall_s": bt_step.get("wall_s"),
    "backtest_other_cpu_s": bt_step.get("other_cpu_s"),
    "rule_evaluations_per_second": round(evals_per_s, 1) if evals_per_s else None,
    "window_bytes_per_active_subject": bt.get("window_bytes_per_active_subject"),
    "precision": bt.get("precision"), "recall": bt.get("recall"),
    "delay_p50_seconds": bt.get("delay_p50_seconds"), "delay_p90_seconds": bt.get("delay_p90_seconds"),
    "latency": lat,
    "latency_preload": preload,
    "latency_preload_lines": int(e["PRELOAD_LINES"]),
    "latency_serve_startup_s": float(e["SERVE_STARTUP"]) if e.get("SERVE_STARTUP") else None,
    "latency_healthz": healthz,
    "contention": noisy,
    "commands": commands,
}
with open(os.path.join(out, "abuse-results.json"), "w") as f:
    json.dump(results, f, indent=2)


def ms(name, key):
    return fmt((lat.get(name) or {}).get(key), 2)


rows = [
    ("workload", f"{results['lines']:,} lines, {results['file_bytes'] / 1e6:,.0f} MB, {int(e['SUBJECTS']):,} subjects, "
                 f"{int(e['DAYS'])} days, seed {int(e['SEED'])}"),
    ("machine", f"{results['machine']['nproc']} cores, {results['machine']['cpu_model']}"),
    ("binary", f"{e['GIT_HEAD']} (+{e['GIT_DIRTY_FILES']} modified tracked files), built {e['BIN_MTIME']}"),
    ("", ""),
    (f"ingest, default rules (best of {repeats})", f"{fmt(with_rules['events_per_second'], 0)} lines/s  "
     f"[{', '.join(fmt(r['events_per_second'], 0) for r in runs['rules'])}]"),
    (f"ingest, no rules (best of {repeats})", f"{fmt(without['events_per_second'], 0)} lines/s  "
     f"[{', '.join(fmt(r['events_per_second'], 0) for r in runs['norules'])}]"),
    ("ratio with/without (target >= 0.85)", f"{ratio:.3f}  {'meets target' if ratio >= 0.85 else 'BELOW TARGET'}"),
    ("accepted / rejected (rules, best run)", f"{fmt(with_rules['accepted'])} / {fmt(with_rules['rejected'])}"),
    ("peak RSS rules / no rules (best runs)", f"{fmt((with_rules['peak_rss_bytes'] or 0) / 2**20)} / "
     f"{fmt((without['peak_rss_bytes'] or 0) / 2**20)} MiB"),
    ("other CPU-s per ingest, rules", ", ".join(fmt(r["other_cpu_s"]) for r in runs["rules"])),
    ("other CPU-s per ingest, no rules", ", ".join(fmt(r["other_cpu_s"]) for r in runs["norules"])),
    ("", ""),
    ("backtest events / rules", f"{fmt(bt.get('events'))} / {fmt(bt.get('rules'))}"),
    ("rule evaluations", fmt(bt.get("rule_evaluations"))),
    ("replay seconds (all state)", fmt(bt.get("replay_seconds"), 3)),
    ("rule evaluations/s (lower bound)", fmt(evals_per_s, 0)),
    ("window bytes per active subject", fmt(bt.get("window_bytes_per_active_subject"))),
    ("precision / recall", f"{fmt(bt.get('precision'), 3)} / {fmt(bt.get('recall'), 3)}"),
    ("TP / FP / FN", f"{fmt(bt.get('true_positives'))} / {fmt(bt.get('false_positives'))} / "
                     f"{fmt(bt.get('false_negatives'))}"),
    ("detection delay p50 / p90 / max (s)", f"{fmt(bt.get('delay_p50_seconds'))} / {fmt(bt.get('delay_p90_seconds'))} / "
                                            f"{fmt(bt.get('delay_max_seconds'))}"),
    ("other CPU-s during backtest", fmt(bt_step.get("other_cpu_s"))),
    ("", ""),
    ("latency bursts seen / missed", f"{fmt(lat.get('seen'))} / {fmt(lat.get('missed'))} of {fmt(lat.get('bursts'))}"
                                     f" (preload {int(e['PRELOAD_LINES']):,} lines)"),
    ("ack -> seen p50 / p99 / max (ms)", f"{ms('ack_to_seen_ms', 'p50')} / {ms('ack_to_seen_ms', 'p99')} / "
                                         f"{ms('ack_to_seen_ms', 'max')}"),
    ("send -> seen p50 / p99 / max (ms)", f"{ms('send_to_seen_ms', 'p50')} / {ms('send_to_seen_ms', 'p99')} / "
                                          f"{ms('send_to_seen_ms', 'max')}"),
    ("send -> ack p50 / p99 / max (ms)", f"{ms('send_to_ack_ms', 'p50')} / {ms('send_to_ack_ms', 'p99')} / "
                                         f"{ms('send_to_ack_ms', 'max')}"),
    ("feed polls per burst max", ms("polls_per_burst", "max")),
    ("other CPU-s during latency test", fmt(lat.get("other_cpu_s"))),
]
print_table(rows, noisy, "low")
errors = lat.get("errors") or []
if errors or lat.get("missed"):
    print(f"LATENCY TEST PROBLEMS: {lat.get('missed')} missed; errors: {errors[:3]}")
print(f"\nfull figures: {os.path.join(out, 'abuse-results.json')}")
EOF
