# frozen_string_literal: true
#
# A small service with one leak, one cache that levels off and per-request
# garbage, writing a series of heap dumps of itself: the process the web UI
# tests import and browse (processes page, leak report, survivors, diff).
#
#   usage: ruby leaky_service.rb DIR N [BASE_TIME=1700000000]
#
# Writes N dumps DIR/heap-<pid>-<time>-<seq>.dump (seq 0..N-1), the agent's
# naming, with <time> = BASE_TIME + 60 * seq: a fake clock one minute apart,
# so the names sort in time order and each file's mtime is set to it. Between
# dumps it handles REQUESTS requests on a short-lived thread (so no stale
# pointer to garbage stays on the main thread's C stack), then GC.start.
# Allocation tracing is on from the first line.
#
#   leak   RequestLog::ENTRIES, a constant Array that every request appends
#          one String (site:log_string) and one Hash (site:log_hash) to and
#          that nothing trims: REQUESTS of each more at every dump.
#   cache  ProductCache@store, a Hash of product Strings (site:cache) that
#          stops taking entries at CACHE_CAP: it fills over the first two
#          intervals and is flat from dump 1 on.
#   churn  per-request Strings, Arrays and Hashes (site:churn), all garbage.
#
# Prints one JSON object on stdout: pid, dumps (names, in order), times,
# requests_per_dump, and for "leak", "cache" and "churn" the sites (file,
# line, "file:line", type) and live counts per dump, counted with
# ObjectSpace.each_object before each dump; leak_class, cache_cap, and
# "containers" ({"leak" | "cache": "file:line"} where each container was
# allocated). Each site sits on a line marked `# site:NAME` (containers
# `# container:KIND`); line numbers are read from those marks, so edit freely.
require "objspace"
require "json"
require "fileutils"

ObjectSpace.trace_object_allocations_start

unless (2..3).cover?(ARGV.size)
  warn "usage: ruby #{$PROGRAM_NAME} DIR N [BASE_TIME=1700000000]"
  exit 2
end
DIR = ARGV[0]
DUMPS = Integer(ARGV[1], 10)
BASE_TIME = Integer(ARGV[2] || "1700000000", 10)
REQUESTS = 100
CACHE_CAP = 150
FileUtils.mkdir_p(DIR)

class RequestLog
  ENTRIES = [] # container:leak

  def self.record(id, status)
    ENTRIES << "request #{id} answered #{status}" # site:log_string
    ENTRIES << { id: id, status: status } # site:log_hash
  end
end

class ProductCache
  @store = {} # container:cache

  class << self
    attr_reader :store

    def fetch(id)
      return @store[id] if @store.key?(id)

      product = "product #{id}" # site:cache
      @store[id] = product if @store.size < CACHE_CAP
      product
    end
  end
end

def handle(id)
  parts = ["GET", "/products/#{id}", "v#{id % 7}"] # site:churn
  _scratch = { "path" => parts[1], "words" => parts.map(&:upcase) }
  ProductCache.fetch(id)
  RequestLog.record(id, 200)
  200
end

SCRIPT = __FILE__
MARKS = {}
CONTAINERS = {}
File.foreach(SCRIPT).with_index(1) do |text, lineno|
  MARKS[Regexp.last_match(1)] = lineno if text =~ /#\s*site:(\w+)\s*$/
  CONTAINERS[Regexp.last_match(1)] = lineno if text =~ /#\s*container:(\w+)\s*$/
end

# Live objects of `klass` allocated at the site's line.
def live_at(site, klass)
  n = 0
  ObjectSpace.each_object(klass) do |o|
    n += 1 if ObjectSpace.allocation_sourceline(o) == MARKS[site] &&
              ObjectSpace.allocation_sourcefile(o) == SCRIPT
  end
  n
end

SITES = {
  "leak" => [["log_string", String, "STRING"], ["log_hash", Hash, "HASH"]],
  "cache" => [["cache", String, "STRING"]],
  "churn" => [["churn", Array, "ARRAY"]],
}.freeze

# Integers only from here on (immediates): the script's own bookkeeping must
# not grow the heap between dumps.
counts = Hash.new { |h, k| h[k] = [] }
SITES.each_value { |sites| sites.each { |name, _, _| counts[name] } }
next_id = 0
DUMPS.times do |seq|
  first = next_id
  Thread.new { REQUESTS.times { |k| handle(first + k) } }.join
  next_id += REQUESTS
  GC.start
  SITES.each_value do |sites|
    sites.each { |name, klass, _| counts[name] << live_at(name, klass) }
  end
  GC.start # the counting's own garbage
  time = BASE_TIME + 60 * seq
  name = "heap-#{Process.pid}-#{time}-#{seq}.dump"
  path = File.join(DIR, name)
  File.open("#{path}.tmp", "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename("#{path}.tmp", path)
  File.utime(time, time, path)
end

times = Array.new(DUMPS) { |seq| BASE_TIME + 60 * seq }
names = times.each_with_index.map { |time, seq| "heap-#{Process.pid}-#{time}-#{seq}.dump" }

summary = { "pid" => Process.pid, "dumps" => names, "times" => times, "requests_per_dump" => REQUESTS }
SITES.each do |kind, sites|
  summary[kind] = sites.map do |name, _, type|
    { "name" => name, "file" => SCRIPT, "line" => MARKS[name], "location" => "#{SCRIPT}:#{MARKS[name]}",
      "type" => type, "counts" => counts[name] }
  end
end
summary["leak_class"] = "RequestLog"
# Where RequestLog::ENTRIES and ProductCache@store were allocated.
summary["containers"] = CONTAINERS.to_h { |kind, line| [kind, "#{SCRIPT}:#{line}"] }
summary["cache_cap"] = CACHE_CAP
puts JSON.generate(summary)
