#!/usr/bin/env bash
# Regenerates docs/screenshots/ (shown in the README): starts `proviso demo`
# on a free loopback port, waits for its printed page links, and runs
# demo.mjs (which also asserts every page is populated) with its screenshots
# going to docs/screenshots/. Needs what the browser tests need (`bash
# .ci/run` installs it).
#
#   tests/browser/screenshots.sh            # 8,000 people, 800k events
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet
data=$(mktemp -d)
out="$data/demo.out"
trap 'kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -rf "$data"' EXIT
./target/debug/proviso demo --data "$data/demo" --listen 127.0.0.1:0 --duration 300 \
    --subjects 8000 --events 800000 --rate 8000 >"$out" 2>"$data/demo.err" &
demo=$!
for _ in $(seq 1 300); do
    grep -q '^review queue:' "$out" && break
    sleep 0.2
done
grep -q '^review queue:' "$out" || { cat "$out" "$data/demo.err" >&2; echo "the demo printed no links" >&2; exit 1; }
sleep 30 # a few simulated weeks in, mid-stream
link() { grep -o "http://[^ ]*$1#token=[^ ]*" "$out"; }
PROVISO_BASE=$(link / | sed 's|/#.*||') \
DEMO_DASHBOARD=$(link /) DEMO_PRIVACY=$(link /privacy) DEMO_REVIEW=$(link /review) \
DEMO_NUMBER=$(grep -o 'privacy center: +[^,]*' "$out" | sed 's/privacy center: //') \
DEMO_SETTLE_MS=15000 PROVISO_ARTIFACTS=docs/screenshots \
    node tests/browser/demo.mjs
