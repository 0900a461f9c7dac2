# frozen_string_literal: true
#
# Writes three heap dumps with known populations for testing `heapscope diff`:
#
#   usage: ruby three_dumps.rb OUT_DIR        (allocation tracing on)
#          NO_TRACE=1 ruby three_dumps.rb OUT_DIR   (no tracing: the dumps carry
#          no file/line/method/generation, so identities across dumps rest on
#          addresses alone and the tool should warn that they are unreliable)
#
# Writes OUT_DIR/before.dump, OUT_DIR/after.dump, OUT_DIR/later.dump and
# OUT_DIR/expected.json. Timeline (GC.start before every dump):
#
#   C  1,500 Preexisting  allocated before before.dump, alive in all three dumps
#   -- before.dump
#   A  3,000 Retained     allocated between before and after, alive at later
#   B  2,000 Transient    allocated between before and after, freed before later
#   -- after.dump
#   (B freed, GC.start)
#   D  2,000 LateArrival  allocated after after.dump, alive at later; allocated
#                         after B's slots were freed, so many of them reuse the
#                         addresses B had in after.dump
#   -- later.dump
#
# `diff before after`        new objects: Retained 3000, Transient 2000,
#                            Preexisting 0, LateArrival 0
# `diff before after later`  retained:    Retained 3000, Transient 0,
#                            Preexisting 0, LateArrival 0
#
# expected.json (schema 1):
# {
#   "schema": 1, "ruby_version": "3.1.2", "traced": bool,
#   "script_file": __FILE__ as Ruby reports it (the dumps' "file" when traced),
#   "dumps": {"before": "before.dump", "after": "after.dump", "later": "later.dump"}
#            (file names inside OUT_DIR),
#   "dump_lines": {"before"|"after"|"later": {"total": n, "root": n, "heap_objects": n}},
#   "populations": {
#     "preexisting"|"retained"|"transient"|"late": {
#       "class": str, "type": "OBJECT", "count": n, "phase": str,
#       "file": str|null, "line": int|null, "location": "FILE:LINE"|null,
#       "method": "new"|null, "generation": int|null   (null when not traced)
#     }
#   },
#   "present_by_class": {"before"|"after"|"later": {CLASS: n, ...}}
#                       (instances of the four classes in each dump, IMEMO excluded),
#   "diff_before_after": {"new_by_class": {CLASS: n, ...}},
#   "diff_before_after_later": {"retained_by_class": {CLASS: n, ...}},
#   "identity": {                        (traced only; null when NO_TRACE=1)
#      "key": "address+type+file+line+generation",
#      "new_total": n, "retained_total": n      (over all heap objects)
#   },
#   "address_and_type": {      what matching on (address, type) alone gives,
#      "key": "address+type",  over all heap objects and by class; with
#      "new_total": n,         NO_TRACE=1 this is the best a tool can do (address
#      "retained_total": n,    reuse makes some freed Transient objects look
#      "new_by_class": {CLASS: n}, "retained_by_class": {CLASS: n}     alive)
#   },
#   "transient_addresses_reused_in_later": n  (addresses of B in after.dump that
#                                               hold a LateArrival in later.dump)
# }
# new_by_class / retained_by_class are by construction and checked against the
# dumps with the "identity" key (traced) before the file is written.

require "objspace"
require "json"
require "fileutils"

if ARGV.size != 1
  warn "usage: [NO_TRACE=1] ruby #{$PROGRAM_NAME} OUT_DIR"
  exit 2
end
OUT_DIR = ARGV[0]
TRACED = ENV["NO_TRACE"] != "1"
FileUtils.mkdir_p(OUT_DIR)

ObjectSpace.trace_object_allocations_start if TRACED

class Preexisting; end
class Retained; end
class Transient; end
class LateArrival; end

COUNTS = { "preexisting" => 1_500, "retained" => 3_000, "transient" => 2_000, "late" => 2_000 }.freeze
CLASSES = { "preexisting" => "Preexisting", "retained" => "Retained",
            "transient" => "Transient", "late" => "LateArrival" }.freeze

# Runs the block in a fresh GC generation with GC disabled; returns that generation.
def window
  GC.start
  GC.disable
  gen = GC.count
  yield
  GC.enable
  gen
end

def write_dump(name)
  path = File.join(OUT_DIR, name)
  tmp = "#{path}.tmp#{Process.pid}"
  GC.start
  File.open(tmp, "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename(tmp, path)
end

# Each population is built inside a method, in its own GC generation, so that
# no reference to it is left in the main frame; each has its own line.
def fill(n)
  out = Array.new(n)
  gen = window do
    i = 0
    while i < n
      out[i] = yield
      i += 1
    end
  end
  [out, gen]
end

LINES = {}
def make_preexisting(n) = fill(n) { Preexisting.new }; LINES["preexisting"] = __LINE__
def make_retained(n) = fill(n) { Retained.new }; LINES["retained"] = __LINE__
def make_transient(n) = fill(n) { Transient.new }; LINES["transient"] = __LINE__
def make_late(n) = fill(n) { LateArrival.new }; LINES["late"] = __LINE__

# Warm-up: the first run of a call site allocates inline caches (IMEMO objects
# with that site's file and line); run every site once on a thread whose
# throw-away objects die with it, so the population lines hold only the
# population objects.
Thread.new do
  make_preexisting(1)
  make_retained(1)
  make_transient(1)
  make_late(1)
  nil
end.join

gens = {}

$preexisting, gens["preexisting"] = make_preexisting(COUNTS["preexisting"])
write_dump("before.dump")

$retained, gens["retained"] = make_retained(COUNTS["retained"])
$transient, gens["transient"] = make_transient(COUNTS["transient"])
write_dump("after.dump")

$transient = nil
GC.start # frees B, so that D can take its slots
$late, gens["late"] = make_late(COUNTS["late"])
write_dump("later.dump")

ObjectSpace.trace_object_allocations_stop if TRACED

# ---- Read the dumps back and check the expectations. ----

Dump = Struct.new(:total, :root, :keys, :addr_type_class, :class_names, :by_class, keyword_init: true)

def read_dump(path)
  d = Dump.new(total: 0, root: 0, keys: {}, addr_type_class: {}, class_names: {}, by_class: Hash.new(0))
  recs = []
  File.foreach(path) do |line|
    d.total += 1
    rec = JSON.parse(line)
    if rec["type"] == "ROOT"
      d.root += 1
      next
    end
    d.class_names[rec["address"]] = rec["name"] if rec["type"] == "CLASS"
    recs << rec
  end
  recs.each do |rec|
    name = rec["type"] == "IMEMO" ? nil : d.class_names[rec["class"]]
    key = [rec["address"], rec["type"], rec["file"], rec["line"], rec["generation"]]
    d.keys[key] = name
    d.addr_type_class[[rec["address"], rec["type"]]] = name
    d.by_class[name] += 1 if name
  end
  d
end

dumps = %w[before after later].to_h { |n| [n, read_dump(File.join(OUT_DIR, "#{n}.dump"))] }
before, after, later = dumps.values_at("before", "after", "later")
class_list = CLASSES.values

tally = ->(names) { class_list.to_h { |c| [c, names.count(c)] } }

new_keys = after.keys.keys.reject { |k| before.keys.key?(k) }
retained_keys = new_keys.select { |k| later.keys.key?(k) }
new_addrs = after.addr_type_class.keys.reject { |a| before.addr_type_class.key?(a) }
retained_addrs = new_addrs.select { |a| later.addr_type_class.key?(a) }

expected_new = { "Preexisting" => 0, "Retained" => COUNTS["retained"],
                 "Transient" => COUNTS["transient"], "LateArrival" => 0 }
expected_retained = { "Preexisting" => 0, "Retained" => COUNTS["retained"],
                      "Transient" => 0, "LateArrival" => 0 }
expected_present = {
  "before" => { "Preexisting" => 1_500, "Retained" => 0, "Transient" => 0, "LateArrival" => 0 },
  "after" => { "Preexisting" => 1_500, "Retained" => 3_000, "Transient" => 2_000, "LateArrival" => 0 },
  "later" => { "Preexisting" => 1_500, "Retained" => 3_000, "Transient" => 0, "LateArrival" => 2_000 },
}

errors = []
present = dumps.to_h { |n, d| [n, class_list.to_h { |c| [c, d.by_class[c]] }] }
errors << "instances per dump #{present} != #{expected_present}" if present != expected_present
if TRACED
  got_new = tally.call(new_keys.map { |k| after.keys[k] })
  got_retained = tally.call(retained_keys.map { |k| after.keys[k] })
  errors << "new by class #{got_new} != #{expected_new}" if got_new != expected_new
  errors << "retained by class #{got_retained} != #{expected_retained}" if got_retained != expected_retained
end

transient_addrs = after.addr_type_class.select { |_, c| c == "Transient" }.keys
reused = transient_addrs.count { |a| later.addr_type_class[a] == "LateArrival" }

populations = {}
COUNTS.each do |name, count|
  populations[name] = {
    "class" => CLASSES[name], "type" => "OBJECT", "count" => count,
    "phase" => { "preexisting" => "allocated before before.dump; alive in all dumps",
                 "retained" => "allocated between before and after; alive at later",
                 "transient" => "allocated between before and after; freed before later",
                 "late" => "allocated after after.dump; alive at later" }[name],
    "file" => TRACED ? __FILE__ : nil,
    "line" => TRACED ? LINES[name] : nil,
    "location" => TRACED ? "#{__FILE__}:#{LINES[name]}" : nil,
    "method" => TRACED ? "new" : nil,
    "generation" => TRACED ? gens[name] : nil,
  }
end

if TRACED
  # Every population object carries exactly the recorded allocation info.
  populations.each do |name, p|
    dump = name == "transient" ? after : later
    n = dump.keys.count do |k, c|
      c == p["class"] && k[2] == p["file"] && k[3] == p["line"] && k[4] == p["generation"]
    end
    errors << "#{name}: #{n} objects carry the recorded file/line/generation, expected #{p["count"]}" if n != p["count"]
  end
end

unless errors.empty?
  warn "three_dumps.rb: the dumps do not match the expectations:"
  errors.each { |e| warn "  #{e}" }
  exit 1
end

expected = {
  "schema" => 1,
  "ruby_version" => RUBY_VERSION,
  "traced" => TRACED,
  "script_file" => __FILE__,
  "dumps" => { "before" => "before.dump", "after" => "after.dump", "later" => "later.dump" },
  "dump_lines" => dumps.to_h { |n, d| [n, { "total" => d.total, "root" => d.root, "heap_objects" => d.total - d.root }] },
  "populations" => populations,
  "present_by_class" => present,
  "diff_before_after" => { "new_by_class" => expected_new },
  "diff_before_after_later" => { "retained_by_class" => expected_retained },
  "identity" => TRACED ? { "key" => "address+type+file+line+generation",
                           "new_total" => new_keys.size, "retained_total" => retained_keys.size } : nil,
  "address_and_type" => {
    "key" => "address+type",
    "new_total" => new_addrs.size,
    "retained_total" => retained_addrs.size,
    "new_by_class" => tally.call(new_addrs.map { |a| after.addr_type_class[a] }),
    "retained_by_class" => tally.call(retained_addrs.map { |a| after.addr_type_class[a] }),
  },
  "transient_addresses_reused_in_later" => reused,
}
File.write(File.join(OUT_DIR, "expected.json"), JSON.pretty_generate(expected) + "\n")
