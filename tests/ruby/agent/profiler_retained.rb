# Used by crates/cli/tests/agent_profiler.rs: retains known numbers of objects
# at lines marked `# @name` (the test finds those lines by the markers).
# ARGV: rate, n (scale for the counts), max_samples, output dir.
require "heapscope/heapscope_native"

N = Heapscope::Native
rate = Float(ARGV[0])
n = Integer(ARGV[1])
max_samples = Integer(ARGV[2])
out = ARGV[3]

class Widget; end

STRINGS = []
ARRAYS = []
WIDGETS = []
TEMP = []

def keep_strings(n)
  n.times { STRINGS << "" } # @strings
end

def keep_arrays(n)
  n.times { |i| ARRAYS << [i] } # @arrays
end

def keep_widgets(n)
  n.times { WIDGETS << Widget.new } # @widgets
end

def make_garbage(n)
  n.times { "garbage" } # @garbage
end

def keep_temp(n)
  n.times { TEMP << "" } # @temp
end

def raises(kind)
  yield
  false
rescue kind
  true
end

[[0.0, 1, 1], [1.5, 1, 1], [0.5, -1, 1], [0.5, 1, -1], ["x", 1, 1]].each do |args|
  raise "profiler_start#{args.inspect} did not raise ArgumentError" unless raises(ArgumentError) { N.profiler_start(*args) }
end
raise "running before start" if N.profiler_running?
raise "start did not return true" unless N.profiler_start(rate, max_samples, 64) == true
raise "not running" unless N.profiler_running?
raise "a second start did not raise RuntimeError" unless raises(RuntimeError) { N.profiler_start(rate, max_samples, 64) }
keep_strings(n)
keep_arrays(n * 3 / 10)
keep_widgets(n / 10)
make_garbage(n * 2)
keep_temp(n / 2)
GC.start
N.profiler_flush("#{out}/before_compact.pprof.gz")

# Move everything that can move, then free TEMP: its objects are found by
# their new addresses only if the compact callback rewrote them.
moved = begin
  GC.verify_compaction_references(toward: :empty, double_heap: true)
  GC.latest_compact_info[:moved]
rescue NotImplementedError
  {}
end
TEMP.clear
GC.start
N.profiler_flush("#{out}/after_compact.pprof.gz")
# A second flush: the first one's own work must not show up in it.
N.profiler_flush("#{out}/second.pprof.gz")
stats = N.profiler_stats
N.profiler_stop
raise "still running" if N.profiler_running?
# A flush after stop reports the live set as the stop measured it.
N.profiler_flush("#{out}/after_stop.pprof.gz")
File.write("#{out}/stats.txt", "#{stats.map { |k, v| "#{k}=#{v}" }.join(" ")} moved_strings=#{moved[:T_STRING].to_i}\n")
