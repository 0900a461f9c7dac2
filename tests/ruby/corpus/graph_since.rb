# dump_all(since: gen) writes only objects allocated since GC generation
# gen, with no ROOT and no CLASS records. 50 Strings and 5 GraphSinceThing
# objects made after `gen` stay alive in globals.
require "objspace"

class GraphSinceThing; end
ObjectSpace.trace_object_allocations_start
GC.start
gen = GC.count
$strings = Array.new(50) { "s" * 100 }
$things = Array.new(5) { GraphSinceThing.new }
File.open("since.dump", "w") { |f| ObjectSpace.dump_all(output: f, since: gen) }
ObjectSpace.trace_object_allocations_stop
require "json"
File.write("expect.json", JSON.generate(ruby: RUBY_VERSION, strings: 50, things: 5))
