# bench/lib.sh: shell helpers shared by bench/compare.sh, bench/abuse.sh and
# bench/partner.sh; sourced, not run.
#
# The sourcing script has cd'd to the repository root and set, before calling
# the helpers: OUT (output dir), BIN (the proviso binary), SKIP_BUILD,
# COMMANDS_FILE (record appends the commands run to it) and, for the timed
# steps of abuse.sh and partner.sh, STEPS_FILE (step_record's NDJSON) and
# WAIT_QUIET (wait_quiet's limit, seconds). Sourcing installs an EXIT trap that
# stops the server start_server started.

say() { printf '\n== %s\n' "$*" >&2; }
record() { printf '%s\n' "$*" >>"$COMMANDS_FILE"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

# --- The binary --------------------------------------------------------------

# `cargo build --release` unless SKIP_BUILD=1; stops when BIN is missing.
build_binary() {
    if [[ "$SKIP_BUILD" != 1 ]]; then
        say "1. cargo build --release"
        record "cargo build --release"
        cargo build --release
    fi
    [[ -x "$BIN" ]] || { echo "$BIN is missing: build failed?" >&2; exit 1; }
}

# What the binary was built from (another engineer may be editing sources):
# sets GIT_HEAD, GIT_DIRTY_FILES, BIN_MTIME. Then every step runs a private
# copy, OUT/NAME, so a concurrent `cargo build` replacing
# target/release/proviso mid-run cannot put two binaries in one run: sets BIN
# to it and BIN_SHA256 (first 16 hex digits).
private_binary() { # NAME
    GIT_HEAD=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    GIT_DIRTY_FILES=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    BIN_MTIME=$(date -u -r "$BIN" +%FT%TZ)
    cp "$BIN" "$OUT/$1.tmp" && mv -f "$OUT/$1.tmp" "$OUT/$1"
    BIN=$OUT/$1
    BIN_SHA256=$(sha256sum "$BIN" | cut -c1-16)
    echo "running $BIN (sha256 $BIN_SHA256..., built $BIN_MTIME from $GIT_HEAD + $GIT_DIRTY_FILES modified files)" >&2
}

# Runs GEN_CMD (the `proviso simulate` command, an array) unless the files it
# writes, EVENTS_FILE and the optional LABELS_FILE, are all there; on failure
# shows OUT/STDERR_NAME and removes them.
generate_workload() { # STDERR_NAME EVENTS_FILE [LABELS_FILE]
    local stderr=$OUT/$1
    shift
    if (($# == 1)) && [[ -s "$1" ]]; then
        echo "reusing $1 (delete it to regenerate)" >&2
    elif (($# == 2)) && [[ -s "$1" && -s "$2" ]]; then
        echo "reusing $1 and $2 (delete them to regenerate)" >&2
    else
        local started
        started=$(now)
        "${GEN_CMD[@]}" 2>"$stderr" || {
            cat "$stderr" >&2
            rm -f "$@"
            exit 1
        }
        echo "generated in $(elapsed "$started" "$(now)")s" >&2
    fi
}

# --- The server --------------------------------------------------------------

SERVER_PID=
# Quarter seconds start_server waits for the server to say where it listens
# (snapshot load and log replay come first).
SERVER_LISTEN_POLLS=1200

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# Starts `proviso serve SERVE_ARG...` in the background with the given extra
# environment, stdout and stderr in OUT/NAME.stdout and OUT/NAME.stderr, and
# waits until it answers /healthz; sets SERVER_PID, SERVER_URL and
# SERVER_STARTUP_S (start to first /healthz answer). SERVE_ARG should hold
# --listen 127.0.0.1:0: the URL is read from the server's stdout.
start_server() { # NAME VAR=VALUE... -- SERVE_ARG...
    local name=$1
    shift
    local vars=()
    while (($# > 0)) && [[ "$1" != -- ]]; do
        vars+=("$1")
        shift
    done
    (($# == 0)) || shift
    local started
    started=$(now)
    env "${vars[@]}" "$BIN" serve "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
    SERVER_PID=$!
    SERVER_URL=
    local line
    for _ in $(seq 1 "$SERVER_LISTEN_POLLS"); do
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

# --- Timing and contention ---------------------------------------------------

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
# Peak RSS from a with_time FILE, in bytes (null without GNU time).
peak_rss_bytes() { # FILE
    if [[ -s "$1" ]]; then echo $(($(tail -n 1 "$1" | cut -d' ' -f1) * 1024)); else echo null; fi
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
# One line per timed step into STEPS_FILE (NDJSON): name, wall, own and other
# CPU, peak RSS, compilers seen at the start.
step_record() { # NAME WALL_S BUSY_BEFORE BUSY_AFTER TIME_FILE COMPILERS
    local own=null peak=null
    if [[ -s "$5" ]]; then
        own=$(awk '{ printf "%.2f", $2 + $3 }' <(tail -n 1 "$5"))
        peak=$(peak_rss_bytes "$5")
    fi
    printf '{"step":"%s","wall_s":%s,"own_cpu_s":%s,"other_cpu_s":%s,"peak_rss_bytes":%s,"compilers_at_start":%s}\n' \
        "$1" "$2" "$own" "$(other_cpu_s "$3" "$4" "$5")" "$peak" "$6" >>"$STEPS_FILE"
}
# A timed step: waits for a quiet machine (wait_quiet), runs CMD under
# with_time into OUT/PREFIX.time with its stdout in OUT/PREFIX.json and its
# stderr in OUT/PREFIX.stderr (shown, and the script stops, when CMD fails),
# then appends the step's record as NAME (step_record). Sets STEP_WALL_S.
timed_step() { # NAME PREFIX CMD...
    local name=$1 prefix=$OUT/$2
    shift 2
    local compilers busy_before started
    wait_quiet
    compilers=$(compilers_running)
    busy_before=$(busy_cpu_s)
    started=$(now)
    with_time "$prefix.time" "$@" >"$prefix.json" 2>"$prefix.stderr" || { cat "$prefix.stderr" >&2; exit 1; }
    STEP_WALL_S=$(elapsed "$started" "$(now)")
    step_record "$name" "$STEP_WALL_S" "$busy_before" "$(busy_cpu_s)" "$prefix.time" "$compilers"
}

# --- NATS (cluster mode) ------------------------------------------------------

# nats-server: $NATS_SERVER, else target/nats/nats-server (as `.ci/run`
# installs it). start_nats starts it on a free loopback port with JetStream
# in a fresh NATS_DIR/js, fsyncing every acknowledged message
# (`sync_interval: always`, as cluster mode needs); sets NATS_PID, NATS_URL.
NATS=${NATS_SERVER:-target/nats/nats-server}
NATS_PID=
need_nats() {
    if [[ ! -x "$NATS" ]]; then
        echo "no nats-server at $NATS: run bash .ci/run (it installs the pinned one) or set NATS_SERVER" >&2
        exit 1
    fi
}
stop_nats() { if [[ -n "$NATS_PID" ]]; then kill -9 "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=; fi; }
start_nats() {
    stop_nats
    rm -rf "$NATS_DIR" && mkdir -p "$NATS_DIR/ports"
    printf 'listen: "127.0.0.1:-1"\njetstream {\n  store_dir: "%s/js"\n  sync_interval: always\n}\n' "$NATS_DIR" >"$NATS_DIR/nats.conf"
    "$NATS" -c "$NATS_DIR/nats.conf" --ports_file_dir "$NATS_DIR/ports" >"$NATS_DIR/server.log" 2>&1 &
    NATS_PID=$!
    for _ in $(seq 1 200); do
        NATS_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0])' \
            "$NATS_DIR/ports/nats-server_$NATS_PID.ports" 2>/dev/null || true)
        [[ -n "$NATS_URL" ]] && return 0
        sleep 0.05
    done
    echo "nats-server did not start; see $NATS_DIR/server.log" >&2
    exit 1
}
