# frozen_string_literal: true
#
# A simulated long-running service that writes a series of heap dumps of ONE
# process, for testing `heapscope leaks DIR`.
#
#   usage: ruby service.rb OUT_DIR [DUMPS=6] [REQUESTS_PER_DUMP=400]
#
# REQUESTS_PER_DUMP (R below) must be a positive multiple of 4. DUMPS >= 5 is
# needed for the plateaus of the caches to be visible (with the defaults the
# slow cache grows up to dump index 2 and is flat from then on).
#
# Everything lives in one process, each allocation site on its own line, marked
# at the end of the line with `# site:NAME` (and each container's allocation
# with `# container:NAME`); the script finds its own line numbers from these
# markers, so the code can be edited freely.
#
# Real leaks (grow by exactly R live objects every interval, without bound):
#   registry    RegistryEntry (OBJECT) appended to Registry::ENTRIES, a
#               class-level Array that is never cleared.
#   price_memo  a String quote memoized in PriceMemo@cache, a class-level Hash
#               keyed by a unique per-request quote id (never hit, never evicted).
#   hooks       a Proc (DATA, struct "proc") capturing a local, pushed onto the
#               global Array $hooks. Each Proc also keeps its captured
#               environment alive: an IMEMO env allocated at the same line, so
#               that line grows by R DATA + R IMEMO per interval.
# Look alarming, but are not leaks:
#   lru         CachedUser (OBJECT) in an LRU cache (LruCache@store, a Hash) of
#               capacity 3R/4. A new user every 4th request: R/4 inserts per
#               interval, so it grows to its capacity by dump 1 and then stays
#               full while churning (R/4 entries evicted and replaced per
#               interval, so at every later dump R/4 of them are new).
#   slow_cache  SlowCacheEntry (OBJECT) in SlowCache@store (a Hash) caching a
#               catalog of 2R SKUs with no eviction; a new SKU every 2nd request
#               (R/2 per interval), so it grows over the warm-up and the first 3
#               intervals and is flat from dump 2 on.
#   request_context / response_body: per-request garbage. Each request
#               allocates a RequestContext (plus its path String, params and
#               headers Hashes), a response body String and a response Array,
#               and drops them. The service keeps only the LAST request's
#               context (@last_context, for its error page), so exactly 1
#               RequestContext is alive at every dump (a different one each time)
#               and 0 response bodies.
#
# Timeline: allocation tracing is on from the first line. A warm-up interval of
# R requests runs first (no dump), then for seq = 0 .. DUMPS-1: R requests,
# GC.start, count every site with ObjectSpace.each_object, GC.start, ObjectSpace.dump_all
# to OUT_DIR/heap-<pid>-<time>-<seq>.dump (written to a .tmp name, then
# renamed; mtime set to <time>), with <time> = 1700000000 + 600 * seq (fake
# 10-minute intervals, so per-hour rates are 6 x the per-dump growth).
# Requests run on a short-lived thread per interval, so no stale reference to
# request garbage is left on the main thread's C stack when GC.start runs
# (Ruby's GC scans C stacks conservatively).
# Request i (counting from 0 over the whole run) uses quote id i, user i / 4 and
# SKU (i / 2) % 2R.
#
# Counts at dump seq (k = seq + 1 intervals after the warm-up):
#   registry, price_memo, hooks:  R * (k + 1)           (800, 1200, ... 2800)
#   lru:                          min(3R/4, R/4 * (k + 1))  (200, 300, 300, ...)
#   slow_cache:                   min(2R,   R/2 * (k + 1))  (400, 600, 800, 800, ...)
#   request_context: 1; response_body: 0
# Each count is checked three ways before expected.json is written: the
# service's own bookkeeping, ObjectSpace.each_object just before the dump, and
# the dump file read back with Ruby's JSON (objects of the site's type and class
# name at the site's file:line). The script exits 1 if they ever differ.
#
# OUT_DIR/expected.json (schema 1):
# {
#   "schema": 1, "ruby_version": "3.1.2", "script_file": __FILE__ as Ruby
#   reports it (= the dumps' "file"), "pid": int,
#   "requests_per_dump": R, "warmup_requests": R, "interval_seconds": 600,
#   "base_time": 1700000000,
#   "dumps": ["heap-<pid>-<time>-<seq>.dump", ...] (names in OUT_DIR, in order),
#   "times": [int, ...] (fake unix times, = the files' mtimes),
#   "dump_bytes": [int, ...], "dump_lines": [int, ...],
#   "leaks" | "caches" | "garbage": [            (leaks in order registry,
#     {                                           price_memo, hooks; caches lru,
#       "name": str, "class": str, "type": str,   slow_cache; garbage
#       "method": str (the dump's "method"),      request_context, response_body)
#       "file": str, "line": int, "location": "FILE:LINE",
#       "counts": [int per dump] (live objects of that type and class there),
#       "deltas": [counts[i+1] - counts[i], ...],
#       "per_dump_growth": int (leaks) | null,  "per_hour_growth": int | null,
#       "capacity": int | null (caches), "plateau_from_dump": int | null
#                   (first dump index from which the count stays at capacity),
#       "allocated": [int per dump] (cumulative number allocated at the site),
#       "by_type_at_location": [{TYPE: n, ...} per dump] (ALL objects at that
#                   file:line, including IMEMO call caches and envs),
#       "container": null (garbage) | {
#         "description": "Registry::ENTRIES" | "PriceMemo@cache" | "$hooks" |
#                        "LruCache@store" | "SlowCache@store",
#         "retained_via": str (how it is reachable from a root),
#         "type": "ARRAY" | "HASH", "class": "Array" | "Hash",
#         "file", "line", "location": where the container was allocated,
#         "sizes": [int per dump] (its "length" / "size" in the dump),
#         "references_to_site": [int per dump] (site objects among its
#                   references; equals counts for every container here)
#       }
#     }, ...
#   ]
# }

require "objspace"
require "json"
require "fileutils"

ObjectSpace.trace_object_allocations_start # before any class is defined

USAGE = "usage: ruby #{$PROGRAM_NAME} OUT_DIR [DUMPS=6] [REQUESTS_PER_DUMP=400]"
unless (1..3).cover?(ARGV.size)
  warn USAGE
  exit 2
end
OUT_DIR = ARGV[0]
DUMPS = Integer(ARGV[1] || "6", 10)
REQUESTS = Integer(ARGV[2] || "400", 10)
if DUMPS < 1 || REQUESTS < 4 || REQUESTS % 4 != 0
  warn "#{USAGE}\nDUMPS must be >= 1 and REQUESTS_PER_DUMP a positive multiple of 4"
  exit 2
end
BASE_TIME = 1_700_000_000
INTERVAL_SECONDS = 600
FileUtils.mkdir_p(OUT_DIR)

# ---------------------------------------------------------------------------
# The service.
# ---------------------------------------------------------------------------

# Leak 1: an append-only class-level registry.
class RegistryEntry
  attr_reader :quote_id, :kind

  def initialize(quote_id, kind)
    @quote_id = quote_id
    @kind = kind
  end
end

class Registry
  ENTRIES = [] # container:registry

  def self.register(quote_id)
    entry = RegistryEntry.new(quote_id, :quote) # site:registry
    ENTRIES << entry
    entry
  end
end

# Leak 2: a memo keyed by something unique per request, so it never hits.
class PriceMemo
  @cache = {} # container:price_memo

  class << self
    attr_reader :cache

    def quote(quote_id, cents)
      return @cache[quote_id] if @cache.key?(quote_id)

      text = "quote #{quote_id}: #{cents} cents" # site:price_memo
      @cache[quote_id] = text
    end
  end
end

# Leak 3: a closure registered as a global hook and never removed. The method
# has only Integer locals, so the captured environment holds nothing else.
$hooks = [] # container:hooks

module AuditHooks
  def self.after_quote(quote_id)
    audited_id = quote_id + 1
    $hooks << proc { audited_id } # site:hooks
    nil
  end
end

# Not a leak: a least-recently-used cache with a fixed capacity.
class CachedUser
  attr_reader :id, :tier

  def initialize(id, tier)
    @id = id
    @tier = tier
  end
end

class LruCache
  attr_reader :capacity

  def initialize(capacity)
    @capacity = capacity
    @store = {} # container:lru
  end

  def fetch(key)
    if @store.key?(key)
      value = @store.delete(key)
      @store[key] = value # now the most recently used
      return value
    end
    value = yield
    @store[key] = value
    @store.delete(@store.first[0]) if @store.size > @capacity # evict the least recently used
    value
  end

  def size = @store.size
end

# Not a leak: a cache of a finite catalog, filled slowly, never evicted.
class SlowCacheEntry
  attr_reader :sku, :cents

  def initialize(sku, cents)
    @sku = sku
    @cents = cents
  end
end

class SlowCache
  attr_reader :capacity

  def initialize(capacity)
    @capacity = capacity
    @store = {} # container:slow_cache
  end

  def fetch(key)
    return @store[key] if @store.key?(key)
    raise "SlowCache over capacity" if @store.size >= @capacity

    @store[key] = yield
  end

  def size = @store.size
end

# Per-request garbage.
class RequestContext
  attr_reader :id, :path, :params, :headers

  def initialize(id, path, params, headers)
    @id = id
    @path = path
    @params = params
    @headers = headers
  end
end

class QuoteService
  attr_reader :users, :catalog, :allocated

  def initialize(requests_per_interval)
    @catalog_size = requests_per_interval * 2
    @users = LruCache.new(requests_per_interval * 3 / 4)
    @catalog = SlowCache.new(@catalog_size)
    @last_context = nil
    @allocated = Hash.new(0) # site name => number allocated so far
  end

  def handle(request_id)
    sku = (request_id / 2) % @catalog_size
    user_id = request_id / 4
    path = "/quotes/#{sku}?user=#{user_id}"
    params = { "sku" => sku, "user" => user_id }
    headers = { "accept" => "application/json", "x-request-id" => "req-#{request_id}" }
    context = RequestContext.new(request_id, path, params, headers) # site:request_context
    @allocated["request_context"] += 1
    @last_context = context # kept for the error page; replaced by the next request

    user = @users.fetch(user_id) do
      @allocated["lru"] += 1
      CachedUser.new(user_id, user_id % 3) # site:lru
    end
    item = @catalog.fetch(sku) do
      @allocated["slow_cache"] += 1
      SlowCacheEntry.new(sku, (sku * 37 + 99) % 10_000) # site:slow_cache
    end

    quote = PriceMemo.quote(request_id, item.cents * (user.tier + 1))
    @allocated["price_memo"] += 1
    Registry.register(request_id)
    @allocated["registry"] += 1
    AuditHooks.after_quote(request_id)
    @allocated["hooks"] += 1

    body = "{\"user\":#{user.id},\"quote\":\"#{quote}\"}" # site:response_body
    @allocated["response_body"] += 1
    [200, { "content-type" => "application/json" }, [body]]
  end
end

# ---------------------------------------------------------------------------
# The sites, found from their markers.
# ---------------------------------------------------------------------------

SCRIPT = __FILE__
MARKS = { "site" => {}, "container" => {} }
File.foreach(SCRIPT).with_index(1) do |text, lineno|
  next unless (m = text.match(/#\s*(site|container):(\w+)\s*$/))
  raise "marker #{m[1]}:#{m[2]} appears twice" if MARKS[m[1]].key?(m[2])

  MARKS[m[1]][m[2]] = lineno
end

Site = Struct.new(:name, :kind, :klass, :type, :container, keyword_init: true)
Container = Struct.new(:description, :retained_via, :type, :klass, :count, keyword_init: true)

SITES = [
  Site.new(name: "registry", kind: "leaks", klass: RegistryEntry, type: "OBJECT",
           container: Container.new(description: "Registry::ENTRIES", type: "ARRAY", klass: Array,
                                    retained_via: "constant ENTRIES of class Registry",
                                    count: -> { Registry::ENTRIES.size })),
  Site.new(name: "price_memo", kind: "leaks", klass: String, type: "STRING",
           container: Container.new(description: "PriceMemo@cache", type: "HASH", klass: Hash,
                                    retained_via: "instance variable @cache of class PriceMemo",
                                    count: -> { PriceMemo.cache.size })),
  Site.new(name: "hooks", kind: "leaks", klass: Proc, type: "DATA",
           container: Container.new(description: "$hooks", type: "ARRAY", klass: Array,
                                    retained_via: "global variable $hooks",
                                    count: -> { $hooks.size })),
  Site.new(name: "lru", kind: "caches", klass: CachedUser, type: "OBJECT",
           container: Container.new(description: "LruCache@store", type: "HASH", klass: Hash,
                                    retained_via: "$service (QuoteService) @users (LruCache) @store",
                                    count: -> { $service.users.size })),
  Site.new(name: "slow_cache", kind: "caches", klass: SlowCacheEntry, type: "OBJECT",
           container: Container.new(description: "SlowCache@store", type: "HASH", klass: Hash,
                                    retained_via: "$service (QuoteService) @catalog (SlowCache) @store",
                                    count: -> { $service.catalog.size })),
  Site.new(name: "request_context", kind: "garbage", klass: RequestContext, type: "OBJECT", container: nil),
  Site.new(name: "response_body", kind: "garbage", klass: String, type: "STRING", container: nil),
].freeze

SITES.each do |s|
  raise "no `# site:#{s.name}` marker" unless MARKS["site"][s.name]
  raise "no `# container:#{s.name}` marker" if s.container && !MARKS["container"][s.name]
end

# The live count each site must have, from the service's own state.
def bookkept_count(site)
  return site.container.count.call if site.container

  site.name == "request_context" ? 1 : 0 # only @last_context survives
end

# Live objects of the site's class allocated at the site's line, by ObjectSpace.
def each_object_count(site)
  line = MARKS["site"][site.name]
  n = 0
  ObjectSpace.each_object(site.klass) do |o|
    next unless o.instance_of?(site.klass)
    next unless ObjectSpace.allocation_sourceline(o) == line && ObjectSpace.allocation_sourcefile(o) == SCRIPT

    n += 1
  end
  n
end

# ---------------------------------------------------------------------------
# Run.
# ---------------------------------------------------------------------------

def run_interval(first_id, count)
  # A throw-away thread: its C stack, with any stale pointers to request
  # garbage, is gone before GC.start scans the main thread's stack.
  Thread.new do
    count.times do |k|
      status, = $service.handle(first_id + k)
      raise "request #{first_id + k} failed" unless status == 200
    end
    nil
  end.join
  first_id + count
end

def write_dump(name, time)
  path = File.join(OUT_DIR, name)
  tmp = "#{path}.tmp"
  File.open(tmp, "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename(tmp, path)
  File.utime(time, time, path)
  path
end

started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
errors = []
$service = QuoteService.new(REQUESTS)
next_id = run_interval(0, REQUESTS) # warm-up, not dumped

names = []
times = []
bookkept = Hash.new { |h, k| h[k] = [] }
allocated = Hash.new { |h, k| h[k] = [] }
DUMPS.times do |seq|
  next_id = run_interval(next_id, REQUESTS)
  GC.start
  time = BASE_TIME + INTERVAL_SECONDS * seq
  SITES.each do |s|
    want = bookkept_count(s)
    got = each_object_count(s)
    errors << "dump #{seq}, #{s.name}: ObjectSpace.each_object finds #{got}, bookkeeping says #{want}" if got != want
    bookkept[s.name] << want
    allocated[s.name] << $service.allocated[s.name]
  end
  GC.start # frees the Strings that allocation_sourcefile returned while counting
  name = "heap-#{Process.pid}-#{time}-#{seq}.dump"
  write_dump(name, time)
  names << name
  times << time
end
dumped = Process.clock_gettime(Process::CLOCK_MONOTONIC)

# ---------------------------------------------------------------------------
# Read the dumps back and count every site there.
# ---------------------------------------------------------------------------

DumpFacts = Struct.new(:lines, :bytes, :counts, :by_type, :methods, :containers, keyword_init: true)

def read_dump(path)
  lines = 0
  class_names = {}
  ours = [] # records allocated in this script
  File.foreach(path) do |text|
    lines += 1
    if text.include?('"type":"CLASS"')
      rec = JSON.parse(text)
      class_names[rec["address"]] = rec["name"] if rec["name"]
    elsif text.include?(SCRIPT)
      rec = JSON.parse(text)
      ours << rec if rec["file"] == SCRIPT
    end
  end
  at = ours.group_by { |r| r["line"] }
  facts = DumpFacts.new(lines: lines, bytes: File.size(path), counts: {}, by_type: {}, methods: {}, containers: {})
  SITES.each do |s|
    recs = at.fetch(MARKS["site"][s.name], [])
    mine = recs.select { |r| r["type"] == s.type && class_names[r["class"]] == s.klass.name }
    facts.counts[s.name] = mine.size
    facts.by_type[s.name] = recs.map { |r| r["type"] }.tally.sort.to_h
    facts.methods[s.name] = mine.map { |r| r["method"] }.uniq
    next unless s.container

    boxes = at.fetch(MARKS["container"][s.name], []).select { |r| r["type"] == s.container.type }
    raise "#{path}: #{boxes.size} #{s.container.type} objects at the line of container #{s.name}" if boxes.size != 1

    box = boxes[0]
    addrs = mine.to_h { |r| [r["address"], true] }
    facts.containers[s.name] = {
      "size" => box["length"] || box["size"] || 0,
      "references_to_site" => (box["references"] || []).count { |a| addrs.key?(a) },
    }
  end
  facts
end

facts = names.map { |n| read_dump(File.join(OUT_DIR, n)) }

SITES.each do |s|
  facts.each_with_index do |f, seq|
    want = bookkept[s.name][seq]
    errors << "#{names[seq]}, #{s.name}: the dump has #{f.counts[s.name]}, expected #{want}" if f.counts[s.name] != want
    next unless s.container

    c = f.containers[s.name]
    errors << "#{names[seq]}, #{s.name}: container size #{c["size"]} != #{want}" if c["size"] != want
    errors << "#{names[seq]}, #{s.name}: container references #{c["references_to_site"]} != #{want}" if c["references_to_site"] != want
  end
end

# The shapes the test relies on.
r = REQUESTS
DUMPS.times do |seq|
  k = seq + 1
  shape = { "registry" => r * (k + 1), "price_memo" => r * (k + 1), "hooks" => r * (k + 1),
            "lru" => [r * 3 / 4, r / 4 * (k + 1)].min, "slow_cache" => [2 * r, r / 2 * (k + 1)].min,
            "request_context" => 1, "response_body" => 0 }
  shape.each do |n, want|
    errors << "dump #{seq}, #{n}: #{bookkept[n][seq]} live, the documented formula gives #{want}" if bookkept[n][seq] != want
  end
end

unless errors.empty?
  warn "service.rb: the dumps do not match the expectations:"
  errors.each { |e| warn "  #{e}" }
  exit 1
end

def site_json(s, counts, allocated, facts)
  line = MARKS["site"][s.name]
  deltas = counts.each_cons(2).map { |a, b| b - a }
  leak = s.kind == "leaks"
  capacity = s.kind == "caches" ? { "lru" => $service.users.capacity, "slow_cache" => $service.catalog.capacity }[s.name] : nil
  plateau = capacity && counts.each_index.find { |i| counts[i..].all?(capacity) }
  methods = facts.flat_map { |f| f.methods[s.name] }.uniq
  h = {
    "name" => s.name, "class" => s.klass.name, "type" => s.type,
    "method" => methods.size == 1 ? methods[0] : methods.first,
    "file" => SCRIPT, "line" => line, "location" => "#{SCRIPT}:#{line}",
    "counts" => counts, "deltas" => deltas,
    "per_dump_growth" => leak ? REQUESTS : nil,
    "per_hour_growth" => leak ? REQUESTS * 3600 / INTERVAL_SECONDS : nil,
    "capacity" => capacity, "plateau_from_dump" => plateau,
    "allocated" => allocated,
    "by_type_at_location" => facts.map { |f| f.by_type[s.name] },
    "container" => nil,
  }
  if s.container
    cline = MARKS["container"][s.name]
    h["container"] = {
      "description" => s.container.description, "retained_via" => s.container.retained_via,
      "type" => s.container.type, "class" => s.container.klass.name,
      "file" => SCRIPT, "line" => cline, "location" => "#{SCRIPT}:#{cline}",
      "sizes" => facts.map { |f| f.containers[s.name]["size"] },
      "references_to_site" => facts.map { |f| f.containers[s.name]["references_to_site"] },
    }
  end
  h
end

expected = {
  "schema" => 1,
  "ruby_version" => RUBY_VERSION,
  "script_file" => SCRIPT,
  "pid" => Process.pid,
  "requests_per_dump" => REQUESTS,
  "warmup_requests" => REQUESTS,
  "interval_seconds" => INTERVAL_SECONDS,
  "base_time" => BASE_TIME,
  "dumps" => names,
  "times" => times,
  "dump_bytes" => facts.map(&:bytes),
  "dump_lines" => facts.map(&:lines),
}
%w[leaks caches garbage].each do |kind|
  expected[kind] = SITES.select { |s| s.kind == kind }.map do |s|
    site_json(s, bookkept[s.name], allocated[s.name], facts)
  end
end
File.write(File.join(OUT_DIR, "expected.json"), JSON.pretty_generate(expected) + "\n")

finished = Process.clock_gettime(Process::CLOCK_MONOTONIC)
mb = facts.sum(&:bytes) / 1024.0 / 1024
puts format("service.rb: %d dumps (%.1f MB in all) in %s; requests and dumps %.2fs, checks %.2fs",
            DUMPS, mb, OUT_DIR, dumped - started, finished - dumped)
SITES.each { |s| puts format("  %-8s %-16s %s", s.kind, s.name, bookkept[s.name].join(" ")) }
