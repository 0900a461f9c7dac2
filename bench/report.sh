#!/usr/bin/env bash
# Heapscope.report against memory_profiler (issue 13), one run on this machine:
#  1. the same block (Rack::MockRequest + JSON, REPEAT requests) bare, under memory_profiler and
#     under Heapscope.report: wall time, report printing included;
#  2. a block churning CHURN_MB of short-lived strings: peak RSS of each (memory_profiler turns
#     GC off, so its peak grows with the churn; MP_CHURN_MB keeps its run within this machine).
#
#   bench/report.sh      REPEAT=2000 CHURN_MB=5120 MP_CHURN_MB=1024
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages ruby:ruby deb:ruby-rack deb:ruby-memory-profiler
lib=$(scripts/build-agent)
echo "agent library: $lib" >&2
echo "== time (${REPEAT:-2000} requests)"
for mode in bare memory_profiler heapscope; do
  ruby -I "$lib" bench/report.rb time "$mode" "${REPEAT:-2000}"
done
echo "== peak RSS while churning strings"
for mode in bare heapscope; do
  ruby -I "$lib" bench/report.rb churn "$mode" "${CHURN_MB:-5120}"
done
ruby -I "$lib" bench/report.rb churn memory_profiler "${MP_CHURN_MB:-1024}"
