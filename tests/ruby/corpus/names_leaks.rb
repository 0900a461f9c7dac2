# A leak seen through instance variables: every step keeps 20 more holders
# (each with @payload) and 20 more Strings with a generic ivar @meta in
# global Arrays, then writes leak-<step>.dump. `heapscope leaks` must name
# @payload and @meta on the paths to the leaked objects.
require "objspace"

class NamesLeakHolder
  def initialize(payload)
    @payload = payload
  end
end

ObjectSpace.trace_object_allocations_start
$names_holders = []
$names_tagged = []
steps = 5
steps.times do |step|
  20.times do |i|
    $names_holders << NamesLeakHolder.new(String.new("payload-#{step}-#{i}" * 4)); $payload_line = __LINE__
    tagged = String.new("tagged-#{step}-#{i}")
    tagged.instance_variable_set(:@meta, String.new("meta-#{step}-#{i}" * 4)); $meta_line = __LINE__
    $names_tagged << tagged
  end
  GC.start
  File.open("leak-#{step}.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
end
ObjectSpace.trace_object_allocations_stop
# json only after the last dump (ruby.wasm aborts a dump_all with json loaded).
require "json"
File.write("expect.json", JSON.generate(
  ruby: RUBY_VERSION,
  dumps: Array.new(steps) { |s| "leak-#{s}.dump" },
  payload_line: $payload_line,
  meta_line: $meta_line,
))
