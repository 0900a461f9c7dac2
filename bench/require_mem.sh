#!/usr/bin/env bash
# Compares `heapscope require-mem` with `derailed bundle:mem` (Debian's
# ruby-derailed-benchmarks) on `require "rails/all"`, offline.
#
# derailed needs a Gemfile: a temporary one names rails (and derailed itself,
# not required) and is resolved against the gems Debian installed
# (`bundle install --local`). `derailed bundle:mem` then requires rails/all
# under its own require hook; heapscope runs
# `ruby -e 'require "bundler/setup"; require "rails/all"'` in the same bundle.
# Both print the rails/all node and its children, largest first; this script
# shows them side by side (MiB).
#
#   bench/require_mem.sh [RUNS]     (default 3 runs of each; medians shown)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
# The newer of the release and debug builds, unless HEAPSCOPE names one.
heapscope=${HEAPSCOPE:-}
if [ -z "$heapscope" ]; then
  heapscope=$here/target/release/heapscope
  [ "$here/target/debug/heapscope" -nt "$heapscope" ] && heapscope=$here/target/debug/heapscope
fi
[ -x "$heapscope" ] || { echo "build heapscope first: cargo build -p heapscope" >&2; exit 2; }
command -v derailed >/dev/null || { echo "derailed not found: apt-get install ruby-derailed-benchmarks" >&2; exit 2; }
ruby -e 'require "rails/all"' 2>/dev/null || { echo "rails not found: apt-get install ruby-rails" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
cat > Gemfile <<'GEMFILE'
source "https://rubygems.org"
gem "rails"
gem "derailed_benchmarks", require: false
GEMFILE
bundle install --local --quiet >/dev/null 2>&1 || { echo "bundle install --local failed in $dir" >&2; exit 2; }
export BUNDLE_GEMFILE=$dir/Gemfile

for i in $(seq "$runs"); do
  CUT_OFF=0 derailed bundle:mem > "derailed.$i.txt" 2>/dev/null
  "$heapscope" require-mem --cutoff 0 --format json -o "heapscope.$i.json" \
    -- ruby -e 'require "bundler/setup"; require "rails/all"' >/dev/null
done

ruby - "$runs" <<'RUBY'
require "json"
runs = ARGV[0].to_i

# derailed: "  " * depth + "name: cost MiB (Also required by: ...)"
def derailed_children(text, parent)
  lines = text.lines.map { |l| [l[/\A */].size / 2, l.strip[/\A(.*?): (-?[\d.]+) MiB/, 1], $2.to_f] }
  i = lines.index { |d, n, _| n == parent } or return [nil, {}]
  depth, _, total = lines[i]
  kids = {}
  lines[(i + 1)..].each do |d, n, c|
    break if d <= depth
    kids[n] = c if d == depth + 1
  end
  [total, kids]
end

def heapscope_children(doc, parent)
  find = ->(nodes) { nodes.each { |n| return n if n["feature"] == parent; r = find.(n["children"]); return r if r } ; nil }
  node = nil
  doc["processes"].each { |p| node ||= find.(p["requires"]) }
  return [nil, {}] unless node
  mib = ->(b) { b / 1048576.0 }
  [mib.(node["total"]), node["children"].to_h { |c| [c["feature"], mib.(c["total"])] }]
end

median = ->(xs) { xs = xs.compact.sort; xs.empty? ? nil : xs[xs.size / 2] }
d_runs = (1..runs).map { |i| derailed_children(File.read("derailed.#{i}.txt"), "rails/all") }
h_runs = (1..runs).map { |i| heapscope_children(JSON.parse(File.read("heapscope.#{i}.json")), "rails/all") }
names = d_runs.first[1].keys | h_runs.first[1].keys
rows = names.map { |n| [n, median.(d_runs.map { |_, k| k[n] }), median.(h_runs.map { |_, k| k[n] })] }
rows.sort_by! { |_, d, h| -(d || h || 0) }
fmt = ->(x) { x ? format("%8.2f", x) : "       -" }
puts format("%-44s %8s %8s", "rails/all and its children (MiB, median of #{runs})", "derailed", "heapscope")
puts format("%-44s %s %s", "rails/all", fmt.(median.(d_runs.map(&:first))), fmt.(median.(h_runs.map(&:first))))
rows.first(12).each { |n, d, h| puts format("  %-42s %s %s", n[0, 42], fmt.(d), fmt.(h)) }
RUBY
