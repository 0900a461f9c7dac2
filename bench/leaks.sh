#!/usr/bin/env bash
# Benchmarks `heapscope leaks` on six dumps of about 1 GB each, snapshots of one
# growing process (bench/gen_dump.rb), named heap-<pid>-<unixtime>-<seq>.dump.
# Reports wall time and peak RSS; the dumps are read one at a time.
#
#   bench/leaks.sh
#
# Environment:
#   LEAKS_MB=1024     size of the first dump (the others grow by 2% each)
#   LEAKS_RUNS=3      timed runs (the fastest is reported)
#   HEAPSCOPE_BIN=PATH  use this binary and skip `cargo build`
#
# Writes bench/results/leaks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MB=${LEAKS_MB:-1024}
RUNS=${LEAKS_RUNS:-3}
DIR="$ROOT/bench/data/leaks-$MB"
RESULTS="$ROOT/bench/results"
mkdir -p "$DIR" "$RESULTS"

if [[ -n ${HEAPSCOPE_BIN:-} ]]; then
  HS=$HEAPSCOPE_BIN
else
  cargo build --release -p heapscope >&2
  HS="${CARGO_TARGET_DIR:-$ROOT/target}/release/heapscope"
fi

if [[ $(find "$DIR" -name 'heap-*.dump' | wc -l) -lt 6 ]]; then
  echo "== generating six snapshots in $DIR" >&2
  args=()
  for i in 1 2 3 4 5 6; do
    args+=("$DIR/heap-4242-$((1700000000 + i * 600))-$i.dump" "$((MB * (98 + 2 * i) / 100))")
  done
  ruby bench/gen_dump.rb "${args[@]}" >&2
fi
bytes=$(du -cb "$DIR"/heap-*.dump | tail -1 | cut -f1)

best="" rss=0
for _ in $(seq "$RUNS"); do
  t=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$t" "$HS" leaks "$DIR" --format json >/dev/null
  read -r secs kb < "$t"
  rm -f "$t"
  if [[ -z $best ]] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; fi
  (( kb > rss )) && rss=$kb
done
{
  echo "## heapscope leaks on six dumps ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  awk -v b="$bytes" -v s="$best" -v kb="$rss" -v runs="$RUNS" 'BEGIN {
    printf "Six snapshots of one process, %.2f GB in all: %.2f s wall (fastest of %d runs), %.0f MB peak RSS (%.2f of one dump).\n",
      b / 1e9, s, runs, kb / 1024, kb * 1024 / (b / 6) }'
} > "$RESULTS/leaks.md"
cat "$RESULTS/leaks.md"
