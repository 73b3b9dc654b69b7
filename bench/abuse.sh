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
#    leaves (target >= 0.70).
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
ADMIN_TOKEN=bench-admin-token-0000001
INGEST_TOKEN=bench-ingest-token-000001
REVIEWER_TOKEN=bench-reviewer-token-00001
PARTNER=benchnet
PARTNER_TOKEN=bench-partner-token-00000001
NPROC=$(nproc)

mkdir -p "$OUT"
: >"$OUT/abuse-commands.txt"
# Results of an earlier run must not leak into this one's report.
rm -f "$OUT"/abuse-ingest-*.json "$OUT"/abuse-ingest-*.time "$OUT"/abuse-ingest-*.stderr \
    "$OUT"/abuse-{backtest,latency,preload,steps,results}.json "$OUT"/abuse-backtest.time "$OUT/abuse-results.txt"
SERVER_PID=

say() { printf '\n== %s\n' "$*" >&2; }
record() { printf '%s\n' "$*" >>"$OUT/abuse-commands.txt"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# Peak RSS and own CPU of a command, when GNU time is installed.
TIME_BIN=
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
    TIME_BIN=/usr/bin/time
fi
with_time() { # FILE CMD...
    local file=$1
    shift
    if [[ -n "$TIME_BIN" ]]; then
        "$TIME_BIN" -f '%M %U %S' -o "$file" "$@"
    else
        "$@"
    fi
}
# CPU-seconds the whole machine spent busy (user+nice+system+irq+softirq+steal).
busy_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
# CPU-seconds used by other processes while a step ran: machine busy time
# minus the step's own user+system time (from GNU time). Near 0 = quiet machine.
other_cpu_s() { # BUSY_BEFORE BUSY_AFTER TIME_FILE
    if [[ -s "$3" ]]; then
        awk -v a="$1" -v b="$2" '{ own = $2 + $3 } END { printf "%.1f", b - a - own }' <(tail -n 1 "$3")
    else
        echo null
    fi
}
# Compilers running right now (another engineer's cargo build), for the notes.
compilers_running() { { pgrep -x rustc || true; pgrep -x cargo || true; } | wc -l; }
# Before a timed step, waits (at most WAIT_QUIET seconds) until no compiler runs.
wait_quiet() {
    local waited=0
    while ((waited < WAIT_QUIET)) && (($(compilers_running) > 0)); do
        ((waited == 0)) && echo "waiting up to ${WAIT_QUIET}s for a running cargo/rustc to finish..." >&2
        sleep 5
        waited=$((waited + 5))
    done
    ((waited == 0)) || echo "waited ${waited}s" >&2
}
# One line per timed step into abuse-steps.json (NDJSON): name, wall, own and
# other CPU, compilers seen at the start.
step_record() { # NAME WALL_S BUSY_BEFORE BUSY_AFTER TIME_FILE COMPILERS
    local own=null peak=null
    if [[ -s "$5" ]]; then
        own=$(awk '{ printf "%.2f", $2 + $3 }' <(tail -n 1 "$5"))
        peak=$(($(tail -n 1 "$5" | cut -d' ' -f1) * 1024))
    fi
    printf '{"step":"%s","wall_s":%s,"own_cpu_s":%s,"other_cpu_s":%s,"peak_rss_bytes":%s,"compilers_at_start":%s}\n' \
        "$1" "$2" "$own" "$(other_cpu_s "$3" "$4" "$5")" "$peak" "$6" >>"$OUT/abuse-steps.json"
}

# Starts `proviso serve` on DATA_DIR with the bench config and tokens; sets
# SERVER_PID and SERVER_URL.
start_server() { # DATA_DIR NAME
    local data=$1 name=$2
    local started
    started=$(now)
    env PROVISO_ADMIN_TOKEN="$ADMIN_TOKEN" PROVISO_INGEST_TOKEN="$INGEST_TOKEN" \
        PROVISO_REVIEWER_TOKEN="$REVIEWER_TOKEN" \
        "$BIN" serve --listen 127.0.0.1:0 --data "$data" --config "$BENCH_CONFIG" \
        >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
    SERVER_PID=$!
    SERVER_URL=
    local line
    for _ in $(seq 1 1200); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "proviso serve exited early; see $OUT/$name.stderr:" >&2
            tail -n 20 "$OUT/$name.stderr" >&2
            exit 1
        fi
        line=$(grep -m1 '^proviso listening on http://' "$OUT/$name.stdout" || true)
        if [[ -n "$line" ]]; then
            SERVER_URL=${line#proviso listening on }
            break
        fi
        sleep 0.25
    done
    [[ -n "$SERVER_URL" ]] || { echo "proviso serve did not say where it listens" >&2; exit 1; }
    for _ in $(seq 1 200); do
        if curl -fsS "$SERVER_URL/healthz" >/dev/null 2>&1; then
            SERVER_STARTUP_S=$(elapsed "$started" "$(now)")
            echo "server $name on $SERVER_URL (pid $SERVER_PID), ready in ${SERVER_STARTUP_S}s" >&2
            return 0
        fi
        sleep 0.1
    done
    echo "proviso serve at $SERVER_URL never answered /healthz" >&2
    exit 1
}

# 1. Build.
if [[ "$SKIP_BUILD" != 1 ]]; then
    say "1. cargo build --release"
    record "cargo build --release"
    cargo build --release
fi
[[ -x "$BIN" ]] || { echo "$BIN is missing: build failed?" >&2; exit 1; }
# What the binary was built from (another engineer may be editing sources).
GIT_HEAD=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY_FILES=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
BIN_MTIME=$(date -u -r "$BIN" +%FT%TZ)
# Every step runs this private copy, so a concurrent `cargo build` replacing
# target/release/proviso mid-run cannot put two binaries in one comparison.
cp "$BIN" "$OUT/abuse-proviso.tmp" && mv -f "$OUT/abuse-proviso.tmp" "$OUT/abuse-proviso"
BIN=$OUT/abuse-proviso
BIN_SHA256=$(sha256sum "$BIN" | cut -c1-16)
echo "running $BIN (sha256 $BIN_SHA256..., built $BIN_MTIME from $GIT_HEAD + $GIT_DIRTY_FILES modified files)" >&2

# 2. Data, generated once.
say "2. workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE" --labels "$LABELS_FILE")
record "${GEN_CMD[*]}"
if [[ -s "$EVENTS_FILE" && -s "$LABELS_FILE" ]]; then
    echo "reusing $EVENTS_FILE and $LABELS_FILE (delete them to regenerate)" >&2
else
    started=$(now)
    "${GEN_CMD[@]}" 2>"$OUT/abuse-simulate.stderr" || {
        cat "$OUT/abuse-simulate.stderr" >&2
        rm -f "$EVENTS_FILE" "$LABELS_FILE"
        exit 1
    }
    echo "generated in $(elapsed "$started" "$(now)")s" >&2
fi
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
    local compilers busy_before started wall
    wait_quiet
    compilers=$(compilers_running)
    busy_before=$(busy_cpu_s)
    started=$(now)
    with_time "$OUT/abuse-ingest-$side-$round.time" "${cmd[@]}" >"$OUT/abuse-ingest-$side-$round.json" \
        2>"$OUT/abuse-ingest-$side-$round.stderr" || { cat "$OUT/abuse-ingest-$side-$round.stderr" >&2; exit 1; }
    wall=$(elapsed "$started" "$(now)")
    step_record "ingest-$side-$round" "$wall" "$busy_before" "$(busy_cpu_s)" "$OUT/abuse-ingest-$side-$round.time" "$compilers"
    "$PY" - "$OUT/abuse-ingest-$side-$round.json" "$side" "$round" "$wall" <<'EOF' >&2
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
wait_quiet
compilers=$(compilers_running)
busy_before=$(busy_cpu_s)
started=$(now)
with_time "$OUT/abuse-backtest.time" "${BT_CMD[@]}" >"$OUT/abuse-backtest.json" 2>"$OUT/abuse-backtest.stderr" ||
    { cat "$OUT/abuse-backtest.stderr" >&2; exit 1; }
step_record backtest "$(elapsed "$started" "$(now)")" "$busy_before" "$(busy_cpu_s)" "$OUT/abuse-backtest.time" "$compilers"

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
start_server "$LAT_DATA" abuse-serve
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
import json, os, platform

e = os.environ
out = e["OUT"]
repeats = int(e["REPEATS"])


def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


steps = {}
with open(os.path.join(out, "abuse-steps.json")) as f:
    for line in f:
        if line.strip():
            step = json.loads(line)
            steps[step["step"]] = step

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
with open(os.path.join(out, "abuse-commands.txt")) as f:
    commands = [line.rstrip("\n") for line in f if line.strip()]

noisy = []
for name, step in steps.items():
    if step.get("other_cpu_s") is not None and step["other_cpu_s"] > 1.0:
        noisy.append(f"{name}: other processes used {step['other_cpu_s']} CPU-s")
    if step.get("compilers_at_start"):
        noisy.append(f"{name}: {step['compilers_at_start']} rustc/cargo process(es) running at its start")
if lat.get("other_cpu_s") is not None and lat["other_cpu_s"] > 1.0:
    noisy.append(f"latency: other processes used {lat['other_cpu_s']} CPU-s")
if int(e.get("LAT_COMPILERS") or 0):
    noisy.append(f"latency: {e['LAT_COMPILERS']} rustc/cargo process(es) running at its start")

results = {
    "events": int(e["EVENTS"]), "subjects": int(e["SUBJECTS"]), "days": int(e["DAYS"]), "seed": int(e["SEED"]),
    "file": e["EVENTS_FILE"], "file_bytes": int(e["FILE_BYTES"]), "lines": int(e["FILE_LINES"]),
    "labels_file": e["LABELS_FILE"], "labels": int(e["LABEL_LINES"]),
    "machine": {
        "nproc": int(e["NPROC"]), "cpu_model": cpu_model(), "mem_total_bytes": mem_total_bytes(),
        "kernel": platform.release(),
    },
    "binary": {"git_head": e["GIT_HEAD"], "dirty_tracked_files": int(e["GIT_DIRTY_FILES"]), "built": e["BIN_MTIME"],
               "sha256_prefix": e["BIN_SHA256"]},
    "repeats": repeats,
    "ingest_rules_events_per_second": with_rules["events_per_second"],
    "ingest_norules_events_per_second": without["events_per_second"],
    "ingest_ratio_rules_over_norules": ratio,
    "ingest_ratio_target": 0.70,
    "ingest_ratio_meets_target": ratio >= 0.70,
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


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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
    ("ratio with/without (target >= 0.70)", f"{ratio:.3f}  {'meets target' if ratio >= 0.70 else 'BELOW TARGET'}"),
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
width = max(len(name) for name, _ in rows)
for name, value in rows:
    print(f"{name:<{width}}  {value}" if name else "")
print()
if noisy:
    print("CONTENTION: these figures may be low; rerun on a quiet machine:")
    for note in noisy:
        print(f"  - {note}")
else:
    print("no contention detected (other CPU <= 1 CPU-s in every timed step, no compiler running)")
errors = lat.get("errors") or []
if errors or lat.get("missed"):
    print(f"LATENCY TEST PROBLEMS: {lat.get('missed')} missed; errors: {errors[:3]}")
print(f"\nfull figures: {os.path.join(out, 'abuse-results.json')}")
EOF
