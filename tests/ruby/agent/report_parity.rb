# frozen_string_literal: false
# Deterministic blocks run under memory_profiler and under Heapscope.report;
# prints both reports' tables as JSON (checked by agent_report.rs).
require "heapscope"
require "memory_profiler"
require "json"
require "rack"
require "rack/mock"

KEPT = []

Node = Struct.new(:name, :children)

APP = lambda do |env|
  req = Rack::Request.new(env)
  [200, { "content-type" => "text/plain" }, ["hello #{req.params["name"]}"]]
end

BLOCKS = {
  "strings" => lambda do
    out = []
    20.times do |i|
      s = "item-#{i}"
      out << s.upcase << (s * 3) << s.sub("item", "thing")
    end
    long = "0123456789abcdef" * 8
    slices = Array.new(10) { |i| long[i, 40] } # shared: they point into long's buffer
    out << slices.last
    KEPT << out.first(5)
    out.size
  end,
  "hashes" => lambda do
    h = {}
    50.times { |i| h["key#{i}"] = { id: i, tags: %w[a b c], name: "name #{i}" } }
    KEPT << h.select { |k, _| k.end_with?("7") }
    h.size
  end,
  "json" => lambda do
    data = { "users" => (1..20).map { |i| { "id" => i, "name" => "user#{i}", "roles" => ["admin", "dev"] } } }
    text = JSON.generate(data)
    back = JSON.parse(text)
    KEPT << back["users"].last
    back.size
  end,
  "rack" => lambda do
    res = Rack::MockRequest.new(APP).get("/greet?name=world&x=1", "HTTP_ACCEPT" => "text/plain")
    res.body
  end,
  "graph" => lambda do
    root = Node.new("root", [])
    5.times do |i|
      child = Node.new("child #{i}", [])
      4.times { |j| child.children << Node.new("leaf #{i}.#{j}", []) }
      root.children << child
    end
    KEPT << root
    nil
  end
}.freeze

BIG = 100_000

def mp_tables(r)
  t = ->(list) { list.to_h { |h| [h[:data], h[:count]] } }
  strings = ->(list) { list.map { |value, locs| [value, locs.to_h] } }
  {
    "allocated_objects" => r.total_allocated,
    "retained_objects" => r.total_retained,
    "allocated_bytes" => r.total_allocated_memsize,
    "retained_bytes" => r.total_retained_memsize,
    "allocated_by_location" => t.call(r.allocated_objects_by_location),
    "allocated_by_class" => t.call(r.allocated_objects_by_class),
    "allocated_by_gem" => t.call(r.allocated_objects_by_gem),
    "retained_by_location" => t.call(r.retained_objects_by_location),
    "retained_by_class" => t.call(r.retained_objects_by_class),
    "retained_by_gem" => t.call(r.retained_objects_by_gem),
    "allocated_strings" => strings.call(r.strings_allocated),
    "retained_strings" => strings.call(r.strings_retained)
  }
end

def hs_tables(r)
  t = ->(type, name) { r.table(type, "objects", name, top: BIG).to_h }
  strings = ->(type) { r.strings(type, top: BIG).map { |value, _n, locs| [value, locs.to_h] } }
  {
    "allocated_objects" => r.total_allocated,
    "retained_objects" => r.total_retained,
    "allocated_bytes" => r.total_allocated_memsize,
    "retained_bytes" => r.total_retained_memsize,
    "allocated_by_location" => t.call("allocated", "location"),
    "allocated_by_class" => t.call("allocated", "class"),
    "allocated_by_gem" => t.call("allocated", "gem"),
    "retained_by_location" => t.call("retained", "location"),
    "retained_by_class" => t.call("retained", "class"),
    "retained_by_gem" => t.call("retained", "gem"),
    "allocated_strings" => strings.call("allocated"),
    "retained_strings" => strings.call("retained")
  }
end

out = {}
BLOCKS.each do |name, block|
  2.times { block.call } # warm up: constants, caches, lazily made objects (Rack's mock env needs two)
  mp = MemoryProfiler.report(top: BIG) { block.call }
  hs = Heapscope.report(top: BIG) { block.call }
  out[name] = { "memory_profiler" => mp_tables(mp), "heapscope" => hs_tables(hs) }
end
out["_ruby"] = RUBY_VERSION
puts JSON.generate(out)
