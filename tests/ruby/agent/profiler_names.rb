# Used by crates/cli/tests/agent_profiler.rs: allocations under every kind
# of Ruby frame name pprof used to mangle (<main>, <top (required)>,
# <class:X>, blocks at several levels) and in C methods (String#*,
# Array.new, Hash#merge), kept alive so they show as in use, and a Rack app
# behind the agent's middleware. Run with the agent (heapscope/autostart) at
# sample rate 1; the profile is flushed at exit.
require_relative "profiler_names_lib" # allocates in <top (required)>

KEEP = []

class Foo
  KEEP_C = Array.new(200) { |i| "class body #{i}" } # @class_body

  def bar
    KEEP << ("b" * 1000) # @string_times
  end

  def self.baz
    KEEP << Array.new(50, 0) # @array_new
  end
end

3.times do
  100.times do
    KEEP << { a: 1 }.merge(b: 2) # @hash_merge
  end
end

300.times do
  Foo.new.bar
  Foo.baz
end

400.times { |i| KEEP << "main #{i}" } # @block_1

# A Rack app behind the agent's middleware: the app's allocations are the
# app's, the middleware's counting is the agent's own.
APP = Heapscope::RackMiddleware.new(->(env) { [200, {}, [KEEP << "body #{env["n"]}"]] }) # @rack_app
300.times { |i| APP.call({ "n" => i }) }
KEEP << ("x" * 100_000) # @main
