#!/usr/bin/env bash
# Benchmarks `heapscope summary` against heapy (and reap, when it is on PATH)
# on a large generated heap dump, and optionally `heapscope diff` against
# `heapy diff`. Prints a table and writes hyperfine's exports and a summary to
# bench/results/.
#
#   bench/run.sh
#
# Environment:
#   BENCH_MB=1024         size of the generated dump (bench/data/bench-1g.dump
#                         for 1024, bench/data/bench-<MB>m.dump otherwise)
#   BENCH_FILE=PATH       use this existing dump instead of generating one
#   BENCH_DIFF_MB=200     size of the first of three snapshot dumps for the diff
#                         benchmark (the others are 10% and 20% bigger); 0 skips it
#   BENCH_TOOLS="heapscope heapy reap"   tools to run (reap only if on PATH)
#   HEAPSCOPE_BIN=PATH    use this binary and skip `cargo build`
#   HEAPSCOPE_RUNS=3 HEAPY_RUNS=2 REAP_RUNS=2   hyperfine runs per tool
#
# Timing: hyperfine -N, heapscope with one warm-up run (the dump is in the page
# cache for every tool: it was just generated or read). Peak RSS: every timed
# run goes through `/usr/bin/time -v`; the table shows the largest "Maximum
# resident set size" seen.
#
# reap (a Rust heap dump analyser on crates.io) is not installed by default:
#   cargo install reap --root /tmp/reap && PATH=/tmp/reap/bin:$PATH bench/run.sh
# it is run as `reap FILE` (prints the types and objects retaining the most memory).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/bench/data"
RESULTS="$ROOT/bench/results"
mkdir -p "$DATA" "$RESULTS"

BENCH_MB=${BENCH_MB:-1024}
BENCH_DIFF_MB=${BENCH_DIFF_MB:-200}
BENCH_TOOLS=${BENCH_TOOLS:-heapscope heapy reap}
HEAPSCOPE_RUNS=${HEAPSCOPE_RUNS:-3}
HEAPY_RUNS=${HEAPY_RUNS:-2}
REAP_RUNS=${REAP_RUNS:-2}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
wants() { [[ " $BENCH_TOOLS " == *" $1 "* ]]; }
# Quotes one word for hyperfine -N, which splits commands like a POSIX shell.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
mb_label() { if [[ $1 == 1024 ]]; then echo 1g; else echo "${1}m"; fi; }

have hyperfine || die "hyperfine is not installed"
have ruby || die "ruby is not installed"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is not installed"

# ---- tools -------------------------------------------------------------------
TOOLS=()
if wants heapscope; then
  if [[ -n ${HEAPSCOPE_BIN:-} ]]; then
    HS=$HEAPSCOPE_BIN
  else
    echo "== cargo build --release -p heapscope"
    cargo build --release -p heapscope
    HS="${CARGO_TARGET_DIR:-$ROOT/target}/release/heapscope"
  fi
  [[ -x $HS ]] || die "no heapscope binary at $HS"
  TOOLS+=(heapscope)
fi
if wants heapy; then
  have heapy || die "heapy is not installed (gem install heapy)"
  TOOLS+=(heapy)
fi
if wants reap; then
  if have reap; then TOOLS+=(reap); else echo "== reap is not on PATH: skipped"; fi
fi
[[ ${#TOOLS[@]} -gt 0 ]] || die "no tool to run"

# ---- the dump ----------------------------------------------------------------
if [[ -n ${BENCH_FILE:-} ]]; then
  FILE=$BENCH_FILE
  [[ -f $FILE ]] || die "BENCH_FILE $FILE does not exist"
else
  FILE="$DATA/bench-$(mb_label "$BENCH_MB").dump"
  if [[ ! -f $FILE ]]; then
    echo "== generating $FILE ($BENCH_MB MB)"
    ruby "$ROOT/bench/gen_dump.rb" "$FILE" "$BENCH_MB"
  fi
fi
FILE_BYTES=$(stat -c %s "$FILE")
echo "== dump: $FILE ($((FILE_BYTES / 1048576)) MB, $(wc -l < "$FILE") lines)"

# ---- measuring ---------------------------------------------------------------
# bench NAME RUNS WARMUP TOOL_ARGS... : hyperfine one command, RSS through GNU time.
bench() {
  local name=$1 runs=$2 warmup=$3
  shift 3
  local rss="$RESULTS/$name.rss.txt" cmd="/usr/bin/time -v -a -o $(q "$RESULTS/$name.rss.txt")" a
  for a in "$@"; do cmd+=" $(q "$a")"; done
  rm -f "$rss"
  printf '%s\n' "$*" > "$RESULTS/$name.cmd"
  echo "== $name: $*"
  hyperfine -N --warmup "$warmup" --runs "$runs" --command-name "$name" \
    --export-json "$RESULTS/$name.json" --export-markdown "$RESULTS/$name.md" "$cmd"
}

SUMMARY_NAMES=()
for tool in "${TOOLS[@]}"; do
  case $tool in
    heapscope) bench summary-heapscope "$HEAPSCOPE_RUNS" 1 "$HS" summary "$FILE" ;;
    heapy) bench summary-heapy "$HEAPY_RUNS" 0 heapy read "$FILE" all ;;
    reap) bench summary-reap "$REAP_RUNS" 0 reap "$FILE" ;;
  esac
  SUMMARY_NAMES+=("summary-$tool")
done

DIFF_NAMES=()
DIFF_BYTES=0
if [[ $BENCH_DIFF_MB != 0 ]] && { wants heapscope || wants heapy; }; then
  l=$(mb_label "$BENCH_DIFF_MB")
  A="$DATA/diff-$l-1.dump" B="$DATA/diff-$l-2.dump" C="$DATA/diff-$l-3.dump"
  if [[ ! -f $A || ! -f $B || ! -f $C ]]; then
    echo "== generating $A $B $C"
    ruby "$ROOT/bench/gen_dump.rb" "$A" "$BENCH_DIFF_MB" \
      "$B" "$((BENCH_DIFF_MB * 11 / 10))" "$C" "$((BENCH_DIFF_MB * 12 / 10))"
  fi
  DIFF_BYTES=$(($(stat -c %s "$A") + $(stat -c %s "$B") + $(stat -c %s "$C")))
  for tool in "${TOOLS[@]}"; do
    case $tool in
      heapscope) bench diff-heapscope "$HEAPSCOPE_RUNS" 1 "$HS" diff "$A" "$B" "$C"; DIFF_NAMES+=(diff-heapscope) ;;
      heapy) bench diff-heapy "$HEAPY_RUNS" 0 heapy diff "$A" "$B" "$C"; DIFF_NAMES+=(diff-heapy) ;;
    esac
  done
fi

# ---- the table ---------------------------------------------------------------
HOST="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
ruby - "$RESULTS" "$FILE" "$FILE_BYTES" "$DIFF_BYTES" "$HOST" "${SUMMARY_NAMES[*]}" "${DIFF_NAMES[*]}" <<'RUBY'
require "json"
results, file, file_bytes, diff_bytes, host, summary_names, diff_names = ARGV
file_bytes = file_bytes.to_i
diff_bytes = diff_bytes.to_i

def row(results, name)
  r = JSON.parse(File.read(File.join(results, "#{name}.json")))["results"].first
  rss = File.read(File.join(results, "#{name}.rss.txt")).scan(/Maximum resident set size \(kbytes\): (\d+)/).flatten.map(&:to_i).max
  { "name" => name, "tool" => name.sub(/\A(summary|diff)-/, ""), "mean_s" => r["mean"], "stddev_s" => r["stddev"],
    "runs" => r["times"].size, "peak_rss_kb" => rss,
    "command" => File.read(File.join(results, "#{name}.cmd")).strip }
end

def table(title, rows, bytes)
  base = rows.find { |r| r["tool"] == "heapscope" } || rows.first
  lines = ["### #{title}", "",
           "| tool | mean s | MB/s | time vs #{base["tool"]} | peak RSS MB | RSS / input size | runs |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  rows.each do |r|
    r["mb_per_s"] = bytes / 1048576.0 / r["mean_s"]
    r["ratio_vs_base"] = r["mean_s"] / base["mean_s"]
    r["peak_rss_mb"] = r["peak_rss_kb"] / 1024.0
    r["rss_fraction_of_input"] = r["peak_rss_kb"] * 1024.0 / bytes
    lines << format("| %s | %.2f ± %.2f | %.1f | %.2fx | %.0f | %.2f | %d |", r["tool"], r["mean_s"], r["stddev_s"] || 0,
                    r["mb_per_s"], r["ratio_vs_base"], r["peak_rss_mb"], r["rss_fraction_of_input"], r["runs"])
  end
  lines << ""
  rows.each { |r| lines << "- #{r["tool"]}: `#{r["command"]}`" }
  lines << ""
  lines
end

summary = summary_names.split.map { |n| row(results, n) }
diff = diff_names.split.map { |n| row(results, n) }
out = ["## heapscope benchmark (#{Time.now.utc.strftime("%Y-%m-%d %H:%M UTC")})", "",
       "Machine: #{host}. Dump: `#{File.basename(file)}`, #{(file_bytes / 1048576.0).round(1)} MB.", ""]
out += table("summary of one dump", summary, file_bytes)
out += table("diff of three dumps (#{(diff_bytes / 1048576.0).round(1)} MB in all)", diff, diff_bytes) unless diff.empty?
text = out.join("\n")
puts
puts text
File.write(File.join(results, "results.md"), text + "\n")
File.write(File.join(results, "results.json"),
           JSON.pretty_generate({ "host" => host, "file" => file, "file_bytes" => file_bytes,
                                  "diff_input_bytes" => diff_bytes, "summary" => summary, "diff" => diff }) + "\n")
RUBY
echo
echo "Results written to $RESULTS/ (results.md, results.json, hyperfine exports)."
