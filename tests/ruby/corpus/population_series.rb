# frozen_string_literal: true
# A series of five dumps of one process, with allocation tracing on:
# - a leak: 200 PopLeak objects (each with a 200-byte String) kept per step;
# - a cache that fills in the first two steps (300 entries each) and stops;
# - churn: objects made and dropped every step.
# Dumps are named heap-<unixtime>.dump, one minute apart, as `leaks` expects.
require "objspace"
ObjectSpace.trace_object_allocations_start

class PopLeak
  def initialize(i)
    @body = "l" * 200
    @i = i
  end
end

$leaked = []
$cache = {}
lines = File.readlines(__FILE__)
line_of = ->(text) { lines.index { |l| l.include?(text) } + 1 }
t0 = 1_700_000_000
5.times do |step|
  200.times { |i| $leaked << PopLeak.new(i) }
  if step < 2
    300.times { |i| $cache[format("c%d-%d", step, i)] = Array.new(4, step) }
  end
  500.times { |i| Array.new(3, i) }
  GC.start
  File.open("heap-#{t0 + step * 60}.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
end

require "json"
File.write("expect.json", JSON.generate(
  ruby: RUBY_VERSION,
  dumps: 5,
  leak_location: "#{__FILE__}:#{line_of.call('PopLeak.new(i) }')}",
  leak_per_dump: 200,
  cache_location: "#{__FILE__}:#{line_of.call('Array.new(4, step)')}"
))
