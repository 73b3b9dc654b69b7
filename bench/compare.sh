#!/usr/bin/env bash
# bench/compare.sh: proviso against DuckDB on the same workload.
#
# Why the comparison is fair:
# - Same input: one NDJSON file from `proviso simulate`, generated once and
#   read by both (warm page cache for both: DuckDB loads it first, proviso
#   second, and 24 GiB of RAM holds it).
# - Same machine, same run: both measured back to back by this script, with
#   every core available to each (DuckDB's default thread count is the core
#   count; proviso's ingest uses one edge worker per core).
# - Both durable: DuckDB loads into a persistent database file (its commit
#   writes and fsyncs); `proviso ingest` fsyncs its log before it returns.
#   DuckDB's extra CHECKPOINT is reported but not counted against it.
# - Same questions: DAU for each of the 30 days, and distinct active subjects
#   in the trailing 30 days ending on each day, with the same definition of
#   "active" (register, session, message, outgoing business_message, on the
#   UTC day of `ts`). DuckDB queries run on a reopened connection, best of 3;
#   proviso's over HTTP (keep-alive, loopback, JSON encoding included), best
#   of 5.
#
# What differs (all of it extra work for proviso, none for DuckDB):
# - DuckDB counts distinct *written* phone strings ("+1 415…", "(415) …" are
#   different to it); proviso counts subjects: numbers parsed and normalised
#   to E.164 (libphonenumber metadata), then replaced by a BLAKE3 keyed
#   pseudonym. The counts can therefore differ; the script prints both.
# - proviso validates every line against the strict event contract (unknown
#   fields, types, content fields, opaque-id charsets) and may reject lines;
#   DuckDB stores whatever parses as JSON.
# - proviso maintains the DAU/MAU state (per-day bitmaps) while ingesting, so
#   its queries read precomputed state; DuckDB computes the answer from the
#   raw table at query time, converting `ts` (string or epoch-ms) per row.
#   The load figure is where proviso pays for that; the query figure is where
#   DuckDB does.
#
# Parameters (environment): EVENTS (5000000), SUBJECTS (100000), DAYS (30),
# SEED (7), HTTP_EVENTS (2000000, lines posted in the HTTP test),
# HTTP_BATCH (10000), HTTP_CONNECTIONS (4), SKIP_BUILD (0).
# Outputs: bench/out/ (gitignored); summary in bench/out/results.json.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT"

EVENTS=${EVENTS:-5000000}
SUBJECTS=${SUBJECTS:-100000}
DAYS=${DAYS:-30}
SEED=${SEED:-7}
START=2026-01-01
HTTP_EVENTS=${HTTP_EVENTS:-2000000}
HTTP_BATCH=${HTTP_BATCH:-10000}
HTTP_CONNECTIONS=${HTTP_CONNECTIONS:-4}
SKIP_BUILD=${SKIP_BUILD:-0}

OUT=${OUT:-bench/out}
BIN=target/release/proviso
VENV=bench/.venv
PY=$VENV/bin/python
EVENTS_FILE=$OUT/events-$EVENTS-$SUBJECTS-$DAYS-$SEED.ndjson
COMMANDS_FILE=$OUT/commands.txt
ANALYST_TOKEN=bench-analyst-token-000001
ADMIN_TOKEN=bench-admin-token-0000001
INGEST_TOKEN=bench-ingest-token-000001
NPROC=$(nproc)
LAST_DAY=$(date -u -d "$START + $((DAYS - 1)) days" +%F)

mkdir -p "$OUT"
: >"$COMMANDS_FILE"
# Results of an earlier run must not leak into this one's report.
rm -f "$OUT"/{duckdb,proviso-ingest,proviso-queries,http-load,run,results}.json "$OUT/results.txt" "$OUT"/*.peak_rss
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# 1. Build.
build_binary

# 2. Data, generated once.
say "2. workload: $EVENTS events, $SUBJECTS subjects, $DAYS days, seed $SEED"
GEN_CMD=("$BIN" simulate --seed "$SEED" --subjects "$SUBJECTS" --days "$DAYS" --events "$EVENTS"
    --start "$START" --out "$EVENTS_FILE" --labels "$OUT/labels.ndjson")
record "${GEN_CMD[*]}"
generate_workload simulate.stderr "$EVENTS_FILE"
FILE_BYTES=$(stat -c %s "$EVENTS_FILE")
FILE_LINES=$(wc -l <"$EVENTS_FILE")
echo "$EVENTS_FILE: $FILE_BYTES bytes, $FILE_LINES lines" >&2

# 3. DuckDB from PyPI, in a venv.
say "3. DuckDB (PyPI) in $VENV"
if [[ -x "$PY" ]] && "$PY" -c 'import duckdb' 2>/dev/null; then
    echo "duckdb $("$PY" -c 'import duckdb; print(duckdb.__version__)') already installed" >&2
else
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q duckdb
fi

# 4. DuckDB reference: load into a persistent file, then the two queries.
say "4. DuckDB: load into $OUT/ref.duckdb, DAU and MAU queries (best of 3)"
DUCK_CMD=("$PY" bench/duckdb_ref.py "$EVENTS_FILE" --db "$OUT/ref.duckdb" --from "$START" --days "$DAYS"
    --window 30 --runs 3)
record "${DUCK_CMD[*]}"
busy_before=$(busy_cpu_s)
with_time "$OUT/duckdb.peak_rss" "${DUCK_CMD[@]}" >"$OUT/duckdb.json"
DUCK_OTHER_CPU=$(other_cpu_s "$busy_before" "$(busy_cpu_s)" "$OUT/duckdb.peak_rss")
DUCK_PEAK=$(peak_rss_bytes "$OUT/duckdb.peak_rss")

# 5. proviso ingest into a fresh data dir.
say "5. proviso ingest into $OUT/proviso-data"
rm -rf "$OUT/proviso-data"
INGEST_CMD=("$BIN" ingest "$EVENTS_FILE" --data "$OUT/proviso-data" --json)
record "${INGEST_CMD[*]}"
started=$(now)
busy_before=$(busy_cpu_s)
with_time "$OUT/proviso-ingest.peak_rss" "${INGEST_CMD[@]}" >"$OUT/proviso-ingest.json" \
    2>"$OUT/proviso-ingest.stderr" || { cat "$OUT/proviso-ingest.stderr" >&2; exit 1; }
INGEST_WALL=$(elapsed "$started" "$(now)")
INGEST_OTHER_CPU=$(other_cpu_s "$busy_before" "$(busy_cpu_s)" "$OUT/proviso-ingest.peak_rss")
PROVISO_PEAK=$(peak_rss_bytes "$OUT/proviso-ingest.peak_rss")
PROVISO_DATA_BYTES=$(du -sb "$OUT/proviso-data" | cut -f1)
echo "ingest wall ${INGEST_WALL}s" >&2
cat "$OUT/proviso-ingest.json" >&2

# 6. proviso queries over HTTP.
say "6. proviso serve on $OUT/proviso-data: DAU and MAU queries (best of 5)"
record "PROVISO_ANALYST_TOKEN=$ANALYST_TOKEN PROVISO_ADMIN_TOKEN=$ADMIN_TOKEN $BIN serve --data $OUT/proviso-data --listen 127.0.0.1:0"
start_server serve PROVISO_ANALYST_TOKEN="$ANALYST_TOKEN" PROVISO_ADMIN_TOKEN="$ADMIN_TOKEN" \
    -- --data "$OUT/proviso-data" --listen 127.0.0.1:0
SERVE_STARTUP=$SERVER_STARTUP_S
record "GET $SERVER_URL/v1/metrics/active?from=$START&to=$LAST_DAY&window=1 (and window=30), Authorization: Bearer $ANALYST_TOKEN"
"$PY" bench/proviso_queries.py --url "$SERVER_URL" --token "$ANALYST_TOKEN" --pid "$SERVER_PID" \
    --from "$START" --days "$DAYS" --window 30 --runs 5 >"$OUT/proviso-queries.json"
stop_server

# 7. HTTP batched ingest on a fresh data dir.
say "7. HTTP ingest: first $HTTP_EVENTS lines, $HTTP_BATCH lines/batch, $HTTP_CONNECTIONS connections"
rm -rf "$OUT/http-data"
record "PROVISO_INGEST_TOKEN=$INGEST_TOKEN PROVISO_ADMIN_TOKEN=$ADMIN_TOKEN $BIN serve --data $OUT/http-data --listen 127.0.0.1:0"
start_server http-serve PROVISO_INGEST_TOKEN="$INGEST_TOKEN" PROVISO_ADMIN_TOKEN="$ADMIN_TOKEN" \
    -- --data "$OUT/http-data" --listen 127.0.0.1:0
HTTP_CMD=("$PY" bench/http_load.py "$EVENTS_FILE" --url "$SERVER_URL" --token "$INGEST_TOKEN"
    --batch "$HTTP_BATCH" --connections "$HTTP_CONNECTIONS" --max-lines "$HTTP_EVENTS")
record "${HTTP_CMD[*]}"
"${HTTP_CMD[@]}" >"$OUT/http-load.json" || echo "http_load reported errors; see $OUT/http-load.json" >&2
HTTP_HEALTHZ=$(curl -fsS "$SERVER_URL/healthz")
stop_server

# 8. Results.
say "8. results"
export FILE_BYTES FILE_LINES INGEST_WALL DUCK_PEAK PROVISO_PEAK PROVISO_DATA_BYTES SERVE_STARTUP HTTP_HEALTHZ \
    EVENTS SUBJECTS DAYS SEED NPROC EVENTS_FILE OUT DUCK_OTHER_CPU INGEST_OTHER_CPU
"$PY" - <<'EOF'
import json, os
e = os.environ
def num(name):
    v = e.get(name, "null")
    return None if v in ("", "null") else float(v)
with open(os.path.join(e["OUT"], "commands.txt")) as f:
    commands = [line.rstrip("\n") for line in f if line.strip()]
run = {
    "events": int(e["EVENTS"]), "subjects": int(e["SUBJECTS"]), "days": int(e["DAYS"]), "seed": int(e["SEED"]),
    "nproc": int(e["NPROC"]), "file": e["EVENTS_FILE"], "file_bytes": int(e["FILE_BYTES"]),
    "lines": int(e["FILE_LINES"]), "proviso_ingest_wall_s": num("INGEST_WALL"),
    "duckdb_peak_rss_bytes": num("DUCK_PEAK"), "proviso_peak_rss_bytes": num("PROVISO_PEAK"),
    "proviso_data_bytes": int(e["PROVISO_DATA_BYTES"]), "proviso_serve_startup_s": num("SERVE_STARTUP"),
    "http_healthz": json.loads(e["HTTP_HEALTHZ"]), "commands": commands,
    "other_cpu_s_during_duckdb": num("DUCK_OTHER_CPU"), "other_cpu_s_during_ingest": num("INGEST_OTHER_CPU"),
}
with open(os.path.join(e["OUT"], "run.json"), "w") as f:
    json.dump(run, f, indent=2)
EOF
"$PY" bench/report.py --out "$OUT" | tee "$OUT/results.txt"
