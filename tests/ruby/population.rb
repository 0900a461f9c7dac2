# frozen_string_literal: true
#
# Builds heap populations whose size, class, allocation site and generation are
# known by construction, dumps the heap with ObjectSpace.dump_all (allocation
# tracing on), then writes a JSON file of exact expectations for the Rust tests.
#
#   usage: ruby population.rb OUT_DUMP OUT_EXPECTED_JSON
#
# How exactness is obtained (Ruby 3.1):
# * The `generation` of an object in the dump is GC.count at the moment it was
#   allocated. Each population is allocated inside `window`, which runs
#   GC.start, then GC.disable, so the whole population shares one generation
#   and nothing else is allocated in it.
# * The first call at a call site allocates inline caches (IMEMO callcache /
#   constcache objects) that carry that site's file, line and generation. All
#   call sites used inside a window are warmed up beforehand (class-level
#   method caches through a thread whose throw-away objects die with it;
#   constants are read into locals before the window), so the population lines
#   and generations hold the population objects only.
# * After dumping, the file is read back and every expectation is checked
#   against it with Ruby's own JSON parser; the script fails loudly if Ruby
#   ever behaves differently.
#
# Expectation JSON (schema 1):
# {
#   "schema": 1, "ruby_version": "3.1.2", "traced": true,
#   "dump": OUT_DUMP as given, "dump_bytes": int,
#   "script_file": __FILE__ exactly as Ruby reports it (same as the dump's "file"),
#   "total_lines": int, "root_lines": int (type ROOT),
#   "heap_object_lines": int (every line whose type is not ROOT),
#   "type_counts": {"OBJECT": int, "STRING": int, ...} (non-ROOT lines by type),
#   "populations": {
#     NAME: {
#       "class": "Widget" | null (anonymous class), "class_address": "0x...",
#       "type": "OBJECT" | "STRING" | "ARRAY" | "HASH",
#       "file": str, "line": int, "location": "FILE:LINE", "method": str,
#       "generation": int, "count": int (exact size of the population),
#       "value": str (STRING populations only), "bytesize": int (idem),
#       "exclusive": [keys among "class", "location", "generation", "method",
#                     "string"] for which the population is the whole group,
#       "dump_totals": {"class": n, "location": n, "generation": n,
#                       "method": n, "string": n (STRING populations only)}
#     }, ...
#   }
# }
# dump_totals are counts over ALL heap-object lines of the dump: non-IMEMO
# objects whose class address is class_address (in 3.1 an IMEMO's "class" is
# not a class: callcaches and constcaches point at Widget there) / whose file and line match / whose generation
# matches / whose method name matches (in any file) / STRING objects whose value
# matches. For every key in "exclusive", dump_totals[key] == count.

require "objspace"
require "json"

if ARGV.size != 2
  warn "usage: ruby #{$PROGRAM_NAME} OUT_DUMP OUT_EXPECTED_JSON"
  exit 2
end
OUT_DUMP, OUT_JSON = ARGV

ObjectSpace.trace_object_allocations_start

class Widget
end

module Outer
  class Inner
  end
end

$anon_class = Class.new # anonymous: its CLASS record has no "name"

N_WIDGETS = 10_000
N_STRINGS = 2_500
N_ARRAYS = 1_234
N_HASHES = 777
N_INNER = 321
N_ANON = 55

# Runs the block in a fresh GC generation with GC disabled; returns the
# generation (GC.count) shared by everything the block allocated.
def window
  GC.start
  GC.disable
  gen = GC.count
  yield
  GC.enable
  gen
end

def make_arrays(n, out)
  i = 0
  while i < n
    out[i] = [i]; $line_arrays = __LINE__
    i += 1
  end
end

def make_hashes(n, out)
  i = 0
  while i < n
    out[i] = { k: i }; $line_hashes = __LINE__
    i += 1
  end
end

# Keep-alive holders, allocated before any window.
$widgets = Array.new(N_WIDGETS)
$strings = Array.new(N_STRINGS)
$arrays = Array.new(N_ARRAYS)
$hashes = Array.new(N_HASHES)
$inners = Array.new(N_INNER)
$anons = Array.new(N_ANON)
widget_class = Widget
inner_class = Outer::Inner
anon_class = $anon_class
# Constants are read here: the first read of a constant at a call site
# allocates an inline cache, so windows use locals and globals only.
n_widgets, n_strings, n_inner, n_anon = N_WIDGETS, N_STRINGS, N_INNER, N_ANON
n_arrays, n_hashes = N_ARRAYS, N_HASHES

# Warm-up: fills class-level method caches for every call made inside a window.
# Throw-away instances live only on the thread's stacks, which die with it.
Thread.new do
  widget_class.new
  inner_class.new
  anon_class.new
  "warm".dup.concat("up")
  make_arrays(1, [])
  make_hashes(1, [])
  nil
end.join
window {} # warms the caches inside `window` itself
window {}

gens = {}

gens[:widgets] = window do
  i = 0
  while i < n_widgets
    $widgets[i] = widget_class.new; $line_widgets = __LINE__
    i += 1
  end
end

gens[:strings] = window do
  i = 0
  while i < n_strings
    # "duplicated-value-" is a frozen literal (no allocation); dup allocates one
    # embedded String that concat grows in place to "duplicated-value-xyz".
    $strings[i] = "duplicated-value-".dup.concat("xyz"); $line_strings = __LINE__
    i += 1
  end
end

gens[:arrays] = window { make_arrays(n_arrays, $arrays) }
gens[:hashes] = window { make_hashes(n_hashes, $hashes) }

gens[:inner] = window do
  i = 0
  while i < n_inner
    $inners[i] = inner_class.new; $line_inner = __LINE__
    i += 1
  end
end

gens[:anon] = window do
  i = 0
  while i < n_anon
    $anons[i] = anon_class.new; $line_anon = __LINE__
    i += 1
  end
end

window {} # closes the last population's generation: later allocations go elsewhere

def address_of(obj)
  JSON.parse(ObjectSpace.dump(obj))["address"]
end

populations = {
  "widgets" => { "class" => "Widget", "class_address" => address_of(Widget), "type" => "OBJECT",
                 "line" => $line_widgets, "method" => "new", "generation" => gens[:widgets],
                 "count" => N_WIDGETS },
  "duplicate_strings" => { "class" => "String", "class_address" => address_of(String), "type" => "STRING",
                           "line" => $line_strings, "method" => "dup", "generation" => gens[:strings],
                           "count" => N_STRINGS },
  "arrays" => { "class" => "Array", "class_address" => address_of(Array), "type" => "ARRAY",
                "line" => $line_arrays, "method" => "make_arrays", "generation" => gens[:arrays],
                "count" => N_ARRAYS },
  "hashes" => { "class" => "Hash", "class_address" => address_of(Hash), "type" => "HASH",
                "line" => $line_hashes, "method" => "make_hashes", "generation" => gens[:hashes],
                "count" => N_HASHES },
  "inner" => { "class" => "Outer::Inner", "class_address" => address_of(Outer::Inner), "type" => "OBJECT",
               "line" => $line_inner, "method" => "new", "generation" => gens[:inner],
               "count" => N_INNER },
  "anonymous" => { "class" => nil, "class_address" => address_of($anon_class), "type" => "OBJECT",
                   "line" => $line_anon, "method" => "new", "generation" => gens[:anon],
                   "count" => N_ANON },
}
populations.each_value do |p|
  p["file"] = __FILE__
  p["location"] = "#{__FILE__}:#{p["line"]}"
end

GC.start
tmp = "#{OUT_DUMP}.tmp#{Process.pid}"
File.open(tmp, "w") { |f| ObjectSpace.dump_all(output: f) }
File.rename(tmp, OUT_DUMP)
ObjectSpace.trace_object_allocations_stop
# Built only now: a String with this value alive at dump time would be counted.
DUP_VALUE = %w[duplicated value xyz].join("-")
populations["duplicate_strings"]["value"] = DUP_VALUE
populations["duplicate_strings"]["bytesize"] = DUP_VALUE.bytesize

# ---- Read the dump back: line counts, totals per key, and self-check. ----
total_lines = 0
root_lines = 0
type_counts = Hash.new(0)
class_names = {}
totals = populations.to_h do |name, _|
  [name, { "class" => 0, "location" => 0, "generation" => 0, "method" => 0 }]
end
strings_total = 0
exact = Hash.new(0) # name => objects matching type, class, file, line, method and generation

File.foreach(OUT_DUMP) do |line|
  total_lines += 1
  rec = JSON.parse(line)
  if rec["type"] == "ROOT"
    root_lines += 1
    next
  end
  type_counts[rec["type"]] += 1
  class_names[rec["address"]] = rec["name"] if rec["type"] == "CLASS" || rec["type"] == "MODULE"
  populations.each do |name, p|
    t = totals[name]
    # Before Ruby 3.2 an IMEMO's "class" slot holds something else (a callcache's
    # receiver class, a constcache's value): it never counts as an instance.
    t["class"] += 1 if rec["class"] == p["class_address"] && rec["type"] != "IMEMO"
    t["location"] += 1 if rec["file"] == p["file"] && rec["line"] == p["line"]
    t["generation"] += 1 if rec["generation"] == p["generation"]
    t["method"] += 1 if rec["method"] == p["method"]
    if rec["type"] == p["type"] && rec["class"] == p["class_address"] && rec["file"] == p["file"] &&
       rec["line"] == p["line"] && rec["method"] == p["method"] && rec["generation"] == p["generation"] &&
       (p["value"].nil? || rec["value"] == p["value"])
      exact[name] += 1
    end
  end
  strings_total += 1 if rec["type"] == "STRING" && rec["value"] == DUP_VALUE
end

errors = []
populations.each do |name, p|
  t = totals[name]
  t["string"] = strings_total if p["type"] == "STRING"
  errors << "#{name}: #{exact[name]} objects match all fields, expected #{p["count"]}" if exact[name] != p["count"]
  if class_names[p["class_address"]] != p["class"]
    errors << "#{name}: class record name #{class_names[p["class_address"]].inspect}, expected #{p["class"].inspect}"
  end
  p["exclusive"] = t.select { |_, v| v == p["count"] }.keys.sort
  p["dump_totals"] = t
end
# Exclusivity that the design guarantees (and the Rust tests rely on).
required = {
  "widgets" => %w[class generation location],
  "duplicate_strings" => %w[generation location string],
  "arrays" => %w[generation location method],
  "hashes" => %w[generation location method],
  "inner" => %w[class generation location],
  "anonymous" => %w[class generation location],
}
required.each do |name, keys|
  missing = keys - populations[name]["exclusive"]
  errors << "#{name}: not exclusive for #{missing.join(", ")}: #{totals[name].inspect}" unless missing.empty?
end
errors << "line count mismatch" if root_lines + type_counts.values.sum != total_lines
unless errors.empty?
  warn "population.rb: the dump does not match the expectations:"
  errors.each { |e| warn "  #{e}" }
  exit 1
end

expected = {
  "schema" => 1,
  "ruby_version" => RUBY_VERSION,
  "traced" => true,
  "dump" => OUT_DUMP,
  "dump_bytes" => File.size(OUT_DUMP),
  "script_file" => __FILE__,
  "total_lines" => total_lines,
  "root_lines" => root_lines,
  "heap_object_lines" => total_lines - root_lines,
  "type_counts" => type_counts.sort.to_h,
  "populations" => populations,
}
File.write(OUT_JSON, JSON.pretty_generate(expected) + "\n")
