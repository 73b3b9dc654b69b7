#!/usr/bin/env bash
# Runs every fuzz target briefly (default 20 s each, one after the other,
# one process), starting from the committed corpus. New corpus entries go
# to a scratch folder, so the committed corpus stays as it is.
#
#   fuzz/run-brief.sh            # 20 s per target
#   FUZZ_SECONDS=600 fuzz/run-brief.sh rules   # one target, 10 minutes
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on stable
# with `--sanitizer none` (cargo-fuzz 0.13 needs nightly only for the
# sanitizers). Exits non-zero on the first crash; the crashing input is
# under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "run-brief: cargo-fuzz is not installed; skipping (cargo install cargo-fuzz --locked)" >&2
    exit 0
fi

seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(edge_line rules log_record snapshot api_query)
fi

# proviso has no unsafe code: the default is stable with no sanitizer
# (libFuzzer still catches panics, aborts, stack overflows, timeouts and
# memory blow-ups). FUZZ_SANITIZER=address uses nightly and ASan.
if [ "${FUZZ_SANITIZER:-none}" = none ]; then
    toolchain=()
    sanitizer=(--sanitizer none)
else
    toolchain=(+nightly)
    sanitizer=(--sanitizer "$FUZZ_SANITIZER")
fi

# FUZZ_DEV=1 builds the targets without optimisation (`cargo fuzz run
# --dev`): a few times fewer executions per second, but a cold build in
# minutes instead of twenty; CI uses it for its brief runs.
build=()
if [ "${FUZZ_DEV:-0}" = 1 ]; then
    build=(--dev)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "run-brief: $target for ${seconds}s (${toolchain[*]:-stable} ${sanitizer[*]})"
    status=0
    rm -f fuzz-0.log
    # -jobs=1 -workers=1: one fuzzing process, whose output libFuzzer
    # writes to fuzz-0.log here.
    cargo "${toolchain[@]}" fuzz run "${build[@]}" "${sanitizer[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
    cat fuzz-0.log >>"$scratch/$target.log" 2>/dev/null || true
    rm -f fuzz-0.log
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec)' "$scratch/$target.log" | sort -u || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$scratch/$target.log" >&2
        echo "run-brief: $target FAILED (the input is under fuzz/artifacts/$target/)" >&2
        exit 1
    fi
done
echo "run-brief: all ${#targets[@]} targets ran ${seconds}s each without a crash"
