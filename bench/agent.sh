#!/usr/bin/env bash
# The agent's overhead benchmark (issue 5), in one run:
#  1. throughput of a Rack app (bench/agent/rack_app.rb through Rack::MockRequest) with no agent,
#     with the agent at default settings, with the profiler off, at sample rates 0.1 and 1, under
#     memory_profiler and under ObjectSpace.trace_object_allocations: median of ROUNDS
#     interleaved runs, overhead against no agent;
#  2. the app's pause while the agent dumps a heap of HEAP_MB (default 1024) MB.
# Writes bench/results/agent-overhead.json and agent-pause.json.
#
#   bench/agent.sh                 ROUNDS=5 REQUESTS=20000 HEAP_MB=1024
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages ruby:ruby deb:ruby-rack deb:ruby-memory-profiler
# Nothing else should compete for the 2 cores while this runs.
lib=$(scripts/build-agent)
export BENCH_HEAPSCOPE=$PWD/target/release/heapscope
export RESULTS=$PWD/bench/results
mkdir -p "$RESULTS"
echo "agent library: $lib" >&2
echo "== throughput (Rack::MockRequest, ${REQUESTS:-20000} requests per run, ${ROUNDS:-5} rounds)"
ruby bench/agent/overhead.rb
echo
echo "== pause for a dump of a ${HEAP_MB:-1024} MB heap (the GC before the dump runs in the child)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$BENCH_HEAPSCOPE" run --no-profile -- ruby "$OLDPWD/bench/agent/pause.rb") |
  tee "$RESULTS/agent-pause.json"
