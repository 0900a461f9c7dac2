# frozen_string_literal: true
# Populations known by construction, dumped with allocation tracing on.
# Literals are frozen, so every String below is allocated by the line that
# builds it and by nothing else, on every Ruby version.
require "objspace"
ObjectSpace.trace_object_allocations_start

class PopRegistry
  attr_reader :entries

  def initialize
    @entries = []
  end
end

class PopEntry
  def initialize(i)
    @name = format("entry-%05d", i)
    @payload = "p" * 300
    @tags = [i, i + 1]
  end
end

PopPoint = Struct.new(:x, :y)

REGISTRY = PopRegistry.new
1000.times { |i| REGISTRY.entries << PopEntry.new(i) }
$points = Array.new(250) { |i| PopPoint.new(i, -i) }
2000.times { String.new("transient") }
GC.start
File.open("population.dump", "w") { |f| ObjectSpace.dump_all(output: f) }

require "json"
File.write("expect.json", JSON.generate(
  ruby: RUBY_VERSION,
  classes: { "PopEntry" => 1000, "PopRegistry" => 1, "PopPoint" => 250 },
  payload_location: "#{__FILE__}:#{File.readlines(__FILE__).index { |l| l.include?('"p" * 300') } + 1}",
  payload_count: 1000,
  payload_bytes: 300
))
