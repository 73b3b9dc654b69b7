#!/usr/bin/env bash
# bench/partner.sh: latency of the consent-gated partner outputs (friend
# suggestions, audience sizes, retraction on refusal) on a realistic graph.
#
# What is measured (bench/partner_load.py, one client, one request at a time,
# keep-alive loopback connections):
# a. GET /v1/partners/benchnet/suggestions/{partner_id}?limit=20 for
#    SUGGESTIONS random (seeded) partner accounts of the workload: p50, p90,
#    p99, max (ms), requests/s, share of non-empty answers, mean list length.
#    Each answer runs the graph walk over the asker's contact book (median
#    100 contacts) and their contacts, the consent gate on every candidate,
#    appends the disclosure to the audit log and the new pairs to the
#    product feed, as in production. Target p99 <= 5 ms.
# b. GET /v1/audiences/{business}?days=90 (advertiser) for AUDIENCES random
#    businesses: the same figures, and how many were suppressed (< k = 100
#    people allowing ads) or released. Target p99 <= 1 ms. Then the largest
#    released audience alone, 500 times: the answer's cost grows with the
#    audience (every member goes through the gate), and most random
#    businesses are small.
# c. For RETRACTIONS (owner, suggested) pairs from (a): the suggested
#    person's number is resolved (untimed), then PUT
#    /v1/subjects/{s}/consent/product {"granted":false}; t_ack is its 200;
#    the partner then reads its product feed after its last cursor until the
#    `retract` of that person's suggestion appears (t_seen). Figures:
#    t_seen - t_ack (target p99 <= 10 ms) and the refusal's own latency.
# Also: the server's VmRSS before and after the load, the data dir size, and
# the time to ingest the workload and start the server.
#
# Why the figures are fair:
# - The workload: `proviso simulate` with 200k subjects, its default median
#   contact book of 100 (no flag changes it), ~40% of subjects linked to a
#   partner account, starting 60 days before today so that the opt-out
#   notice periods (30 days from first seen) are over: outside the EEA and GB
#   people allow product and ads unless they refused (~5% refuse ads; EEA and
#   GB people need an explicit grant). So the gate does real work and most
#   answers are non-empty.
# - The data is ingested with `--config` naming benchnet first: the
#   simulator's partner events name no partner and go to the first configured
#   one at the edge (without the config they land at the partner `default`
#   and benchnet has no accounts).
# - Same binary for every step: a private copy in bench/out, so a concurrent
#   `cargo build` cannot swap it mid-run.
# - Contention is visible: for each phase, the CPU-seconds the machine spent
#   busy minus the server's and the client's own (from /proc) is the work of
#   other processes. About 0 on a quiet machine. Before each timed step the
#   script waits (at most WAIT_QUIET s) while a cargo/rustc process runs.
# - The client is Python, sequential, on the same 2 cores; the latencies
#   include one HTTP round trip on loopback and Python's HTTP handling, so
#   they are an upper bound on the server's own time.
#
# Parameters (environment): SUBJECTS (200000), DAYS (14), EVENTS (3000000),
# SEED (3), START (60 days before today, UTC), SUGGESTIONS (2000), AUDIENCES
# (2000), RETRACTIONS (300), AUDIENCE_DAYS (90), K (100: PROVISO_AUDIENCE_K),
# WAIT_QUIET (300: before each timed step, wait at most this many seconds
# while a cargo/rustc process runs; 0 never waits), SKIP_BUILD (0).
# Outputs: bench/out/ (gitignored); summary in bench/out/partner-results.json,
# table in bench/out/partner-results.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

SUBJECTS=${SUBJECTS:-200000}
DAYS=${DAYS:-14}
EVENTS=${EVENTS:-3000000}
SEED=${SEED:-3}
START=${START:-$(date -u -d '60 days ago' +%F)}
SUGGESTIONS=${SUGGESTIONS:-2000}
AUDIENCES=${AUDIENCES:-2000}
RETRACTIONS=${RETRACTIONS:-300}
AUDIENCE_DAYS=${AUDIENCE_DAYS:-90}
K=${K:-100}
WAIT_QUIET=${WAIT_QUIET:-300}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=bench/out
BIN=target/release/proviso
PY=python3
EVENTS_FILE=$OUT/partner-events-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START.ndjson
LABELS_FILE=$OUT/partner-labels-$SUBJECTS-$EVENTS-$DAYS-$SEED-$START.ndjson
DATA=$OUT/partner-data
BENCH_CONFIG=$OUT/partner-bench.toml
COMMANDS_FILE=$OUT/partner-commands.txt
STEPS_FILE=$OUT/partner-steps.json
ADMIN_TOKEN=bench-admin-token-0000001
SUBJECT_TOKEN=bench-subject-token-000001
ADVERTISER_TOKEN=bench-advertiser-token-01
PARTNER=benchnet
PARTNER_TOKEN=bench-partner-token-00000001
NPROC=$(nproc)

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# Results of an earlier run must not leak into this one's report.
rm -f "$OUT"/partner-{ingest,load,steps,results}.json "$OUT"/partner-ingest.{time,stderr} \
    "$OUT"/partner-simulate.stderr "$OUT/partner-results.txt"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
# Replaying a large log can take a while before the server listens.
SERVER_LISTEN_POLLS=2400

# Bytes under a directory, and per top-level entry as JSON.
dir_bytes_json() { # DIR
    local total parts
    total=$(du -sb "$1" | cut -f1)
    parts=$(du -sb "$1"/* 2>/dev/null | awk '{ n = split($2, p, "/"); printf "%s\"%s\":%s", (NR > 1 ? "," : ""), p[n], $1 }')
    printf '{"total":%s,"parts":{%s}}' "$total" "$parts"
}

# 1. Build, and run a private copy of the binary from here on.
build_binary
private_binary partner-proviso

# 2. Data, generated once per parameter set (START is in the name: rerun on
# another day and the notice periods move with it).
say "2. workload: $EVENTS events, $SUBJECTS subjects, $DAYS days from $START, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE" --labels "$LABELS_FILE")
record "${GEN_CMD[*]}"
generate_workload partner-simulate.stderr "$EVENTS_FILE" "$LABELS_FILE"
FILE_BYTES=$(stat -c %s "$EVENTS_FILE")
FILE_LINES=$(wc -l <"$EVENTS_FILE")
echo "$EVENTS_FILE: $FILE_BYTES bytes, $FILE_LINES lines" >&2

# 3. The partner config: benchnet first, so the simulator's partner events
# (no partner name) belong to it.
cat >"$BENCH_CONFIG" <<EOF
# bench/partner.sh: one partner network receiving security, product and ads.
[[partners]]
name = "$PARTNER"
purposes = ["security", "product", "ads"]
tokens = ["$PARTNER_TOKEN"]
EOF

# 4. Ingest into a fresh data dir.
say "4. ingest into a fresh $DATA"
rm -rf "$DATA"
INGEST_CMD=("$BIN" ingest "$EVENTS_FILE" --data "$DATA" --config "$BENCH_CONFIG" --json)
record "rm -rf $DATA && ${INGEST_CMD[*]}"
timed_step ingest partner-ingest "${INGEST_CMD[@]}"
"$PY" - "$OUT/partner-ingest.json" "$STEP_WALL_S" <<'EOF' >&2
import json, sys
s = json.load(open(sys.argv[1]))
print(f"ingest: {s['events_per_second']:,.0f} lines/s, {s['seconds']:.2f}s (wall {float(sys.argv[2]):.2f}s), "
      f"accepted {s['accepted']:,}, rejected {s['rejected']:,} {s['rejected_by_reason']}")
EOF
DATA_BYTES_INGESTED=$(dir_bytes_json "$DATA")

# 5. Serve and load.
say "5. serve and measure: $SUGGESTIONS suggestions, $AUDIENCES audience sizes, $RETRACTIONS retractions"
record "PROVISO_ADMIN_TOKEN=$ADMIN_TOKEN PROVISO_SUBJECT_SERVICE_TOKEN=$SUBJECT_TOKEN PROVISO_ADVERTISER_TOKEN=$ADVERTISER_TOKEN PROVISO_AUDIENCE_K=$K $BIN serve --listen 127.0.0.1:0 --data $DATA --config $BENCH_CONFIG"
wait_quiet
start_server partner-serve PROVISO_ADMIN_TOKEN="$ADMIN_TOKEN" PROVISO_SUBJECT_SERVICE_TOKEN="$SUBJECT_TOKEN" \
    PROVISO_ADVERTISER_TOKEN="$ADVERTISER_TOKEN" PROVISO_AUDIENCE_K="$K" \
    -- --listen 127.0.0.1:0 --data "$DATA" --config "$BENCH_CONFIG"
SERVE_STARTUP=$SERVER_STARTUP_S
HEALTHZ=$(curl -fsS "$SERVER_URL/healthz" || echo null)
LOAD_CMD=("$PY" bench/partner_load.py --url "$SERVER_URL" --events "$EVENTS_FILE" --partner "$PARTNER"
    --partner-token "$PARTNER_TOKEN" --advertiser-token "$ADVERTISER_TOKEN" --subject-token "$SUBJECT_TOKEN"
    --suggestions "$SUGGESTIONS" --audiences "$AUDIENCES" --audience-days "$AUDIENCE_DAYS"
    --retractions "$RETRACTIONS" --seed "$SEED" --pid "$SERVER_PID")
record "${LOAD_CMD[*]}"
wait_quiet
LOAD_COMPILERS=$(compilers_running)
"${LOAD_CMD[@]}" >"$OUT/partner-load.json" || echo "partner_load reported problems; see $OUT/partner-load.json" >&2
LOAD_COMPILERS_AFTER=$(compilers_running)
DATA_BYTES_LOADED=$(dir_bytes_json "$DATA")
stop_server

# 6. Results.
say "6. results"
export OUT EVENTS SUBJECTS DAYS SEED START K NPROC EVENTS_FILE FILE_BYTES FILE_LINES SERVE_STARTUP HEALTHZ \
    LOAD_COMPILERS LOAD_COMPILERS_AFTER GIT_HEAD GIT_DIRTY_FILES BIN_MTIME BIN_SHA256 DATA_BYTES_INGESTED DATA_BYTES_LOADED
"$PY" - <<'EOF' | tee "$OUT/partner-results.txt"
import json, os, sys

sys.path.insert(0, "bench")  # the working directory is the repository root
from benchlib import binary, fmt, load_json, machine, print_table, read_commands, read_steps, step_contention

e = os.environ
out = e["OUT"]


def load(name):
    return load_json(out, name, empty_is_missing=True)


steps = read_steps(os.path.join(out, "partner-steps.json"))
ingest = load("partner-ingest.json") or {}
load_ = load("partner-load.json") or {}
sug = load_.get("suggestions") or {}
aud = load_.get("audiences") or {}
ret = load_.get("retractions") or {}
big = load_.get("audience_largest") or {}
healthz = json.loads(e["HEALTHZ"]) if e.get("HEALTHZ", "null") != "null" else None
commands = read_commands(os.path.join(out, "partner-commands.txt"))

noisy = step_contention(steps)
for name, phase in (("suggestions", sug), ("audiences", aud), ("audience_largest", big), ("retractions", ret)):
    if phase.get("other_cpu_s") is not None and phase["other_cpu_s"] > 1.0:
        noisy.append(f"{name}: other processes used {phase['other_cpu_s']} CPU-s")
if int(e.get("LOAD_COMPILERS") or 0) or int(e.get("LOAD_COMPILERS_AFTER") or 0):
    noisy.append(f"load: rustc/cargo process(es) running at its start ({e['LOAD_COMPILERS']}) "
                 f"or end ({e['LOAD_COMPILERS_AFTER']})")


def meets(summary, target):
    p99 = (summary or {}).get("p99")
    return None if p99 is None else p99 <= target


rss = load_.get("server_rss_bytes_after")
subjects = (healthz or {}).get("subjects")
results = {
    "events": int(e["EVENTS"]), "subjects": int(e["SUBJECTS"]), "days": int(e["DAYS"]), "seed": int(e["SEED"]),
    "start": e["START"], "audience_k": int(e["K"]),
    "file": e["EVENTS_FILE"], "file_bytes": int(e["FILE_BYTES"]), "lines": int(e["FILE_LINES"]),
    "machine": machine(e),
    "binary": binary(e),
    "ingest": ingest,
    "ingest_step": steps.get("ingest"),
    "serve_startup_s": float(e["SERVE_STARTUP"]) if e.get("SERVE_STARTUP") else None,
    "healthz": healthz,
    "suggestions_p99_meets_target": meets(sug.get("latency_ms"), 5.0),
    "audiences_p99_meets_target": meets(aud.get("latency_ms"), 1.0),
    "audience_largest_p99_meets_target": meets(big.get("latency_ms"), 1.0),
    "retraction_ack_to_seen_p99_meets_target": meets(ret.get("ack_to_seen_ms"), 10.0),
    "server_rss_bytes": rss,
    "server_rss_bytes_per_subject": round(rss / subjects, 1) if rss and subjects else None,
    "data_bytes_after_ingest": json.loads(e["DATA_BYTES_INGESTED"]),
    "data_bytes_after_load": json.loads(e["DATA_BYTES_LOADED"]),
    "load": load_,
    "contention": noisy,
    "commands": commands,
}
with open(os.path.join(out, "partner-results.json"), "w") as f:
    json.dump(results, f, indent=2)


def lat(summary):
    s = summary or {}
    return " / ".join(fmt(s.get(key), 2) for key in ("p50", "p90", "p99", "max"))


def verdict(ok):
    return "" if ok is None else ("  meets target" if ok else "  ABOVE TARGET")


mib = lambda b: fmt(b / 2**20) if b else "n/a"
rows = [
    ("workload", f"{results['lines']:,} lines, {results['file_bytes'] / 1e6:,.0f} MB, {int(e['SUBJECTS']):,} subjects, "
                 f"{int(e['DAYS'])} days from {e['START']}, seed {int(e['SEED'])}"),
    ("machine", f"{results['machine']['nproc']} cores, {results['machine']['cpu_model']}"),
    ("binary", f"{e['GIT_HEAD']} (+{e['GIT_DIRTY_FILES']} modified tracked files), built {e['BIN_MTIME']}"),
    ("", ""),
    ("ingest", f"{fmt(ingest.get('events_per_second'), 0)} lines/s, {fmt(ingest.get('seconds'), 2)} s; accepted "
               f"{fmt(ingest.get('accepted'))}, rejected {fmt(ingest.get('rejected'))}"),
    ("serve startup (s)", fmt(results["serve_startup_s"], 2)),
    ("subjects (healthz) / linked accounts", f"{fmt(subjects)} / {fmt(load_.get('linked_partner_accounts'))}"),
    ("", ""),
    ("suggestions p50/p90/p99/max (ms)", lat(sug.get("latency_ms")) + verdict(results["suggestions_p99_meets_target"])),
    ("  of which non-empty / empty (ms)", f"{lat(sug.get('latency_ms_non_empty'))}  |  {lat(sug.get('latency_ms_empty'))}"),
    ("suggestions requests/s", fmt(sug.get("requests_per_second"))),
    ("suggestions non-empty", f"{fmt(sug.get('non_empty'))} of {fmt(sug.get('requests'))} "
                              f"({fmt(100 * (sug.get('non_empty_share') or 0))}%), status {sug.get('status')}"),
    ("suggestions mean length (limit 20)", f"{fmt(sug.get('mean_length'), 2)} (full lists: {fmt(sug.get('full_lists'))})"),
    (f"why empty ({fmt(sug.get('empty_explained_of'))} checked)",
     "; ".join(f"{k}: {v}" for k, v in sorted((sug.get("empty_explained") or {}).items(), key=lambda kv: -kv[1]))),
    ("", ""),
    ("audience size p50/p90/p99/max (ms)", lat(aud.get("latency_ms")) + verdict(results["audiences_p99_meets_target"])),
    ("  of which released / suppressed (ms)", f"{lat(aud.get('latency_ms_released'))}  |  "
                                              f"{lat(aud.get('latency_ms_suppressed'))}"),
    ("audience requests/s", fmt(aud.get("requests_per_second"))),
    ("audience released / suppressed", f"{fmt(aud.get('released'))} / {fmt(aud.get('suppressed'))} "
                                       f"({fmt(aud.get('businesses_released'))} of {fmt(aud.get('businesses_asked'))} "
                                       f"businesses released, k = {e['K']})"),
    ("largest audiences", ", ".join(f"{b} {fmt(s)}" for b, s in (aud.get("largest") or {}).items())),
    (f"largest alone ({big.get('business')}, {fmt(big.get('requests'))} req, ms)",
     lat(big.get("latency_ms")) + verdict(results["audience_largest_p99_meets_target"])),
    ("", ""),
    ("retractions seen / missed", f"{fmt(ret.get('seen'))} / {fmt(ret.get('missed'))} of {fmt(ret.get('pairs_available'))}"
                                  f" pairs (asked {fmt(ret.get('asked'))})"),
    ("ack -> retract seen p50/p90/p99/max (ms)", lat(ret.get("ack_to_seen_ms"))
     + verdict(results["retraction_ack_to_seen_p99_meets_target"])),
    ("refusal PUT p50/p90/p99/max (ms)", lat(ret.get("send_to_ack_ms"))),
    ("retracts per refusal mean / max", f"{fmt((ret.get('retracts_per_refusal') or {}).get('mean'), 2)} / "
                                        f"{fmt((ret.get('retracts_per_refusal') or {}).get('max'))}"),
    ("feed polls per refusal max", fmt((ret.get("polls_per_refusal") or {}).get("max"))),
    ("still suggested after refusal", fmt(ret.get("still_suggested_after_refusal"))),
    ("", ""),
    ("server RSS before / after load (MiB)", f"{mib(load_.get('server_rss_bytes_before'))} / {mib(rss)}"
                                             f" ({fmt(results['server_rss_bytes_per_subject'])} B per subject)"),
    ("data dir after ingest / load (MiB)", f"{mib(results['data_bytes_after_ingest']['total'])} / "
                                           f"{mib(results['data_bytes_after_load']['total'])}"),
    ("other CPU-s: ingest / sugg / aud / retr", " / ".join(
        fmt(x) for x in ((steps.get("ingest") or {}).get("other_cpu_s"), sug.get("other_cpu_s"),
                         aud.get("other_cpu_s"), ret.get("other_cpu_s")))),
]
print_table(rows, noisy, "off")
problems = (sug.get("errors") or []) + (aud.get("errors") or []) + (big.get("errors") or []) + (ret.get("errors") or [])
if problems or ret.get("missed") or ret.get("still_suggested_after_refusal"):
    print(f"LOAD PROBLEMS: {ret.get('missed')} retractions missed, {ret.get('still_suggested_after_refusal')} "
          f"still suggested; errors: {problems[:3]}")
if not load_:
    print("LOAD FAILED: no figures; see the script's stderr")
print(f"\nfull figures: {os.path.join(out, 'partner-results.json')}")
EOF
