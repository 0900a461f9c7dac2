# Used by crates/cli/tests/agent_profiler.rs: allocated bytes of a workload
# of large short-lived strings and arrays (and a few small objects), as the
# agent's profile counts them and as memory_profiler does. ARGV: mode
# ("agent": the agent at rate 1 flushes to ARGV[1]; "memory_profiler": its
# allocated bytes by file go to ARGV[1] as JSON).
mode, out = ARGV

def workload
  200.times do |i|
    s = "x" * (50_000 + i) # @big_string
    a = Array.new(5_000 + i, i) # @big_array
    h = { i => s.bytesize }.merge(len: a.size) # @hash
    parts = s.byteslice(0, 1000).split("x", 50) # @split
    parts.size + h.size
  end
  40.times { |i| ("%05d" % i) * 10_000 } # @formatted
end

case mode
when "agent"
  require "heapscope"
  Heapscope.start(sample_rate: 1, profile_path: out, profile_interval: 0, stats: false,
                  runtime_dir: File.join(File.dirname(out), "run"),
                  dump_dir: File.join(File.dirname(out), "dumps"))
  workload
  Heapscope.stop
when "memory_profiler"
  require "memory_profiler"
  require "json"
  report = MemoryProfiler.report { workload }
  by_file = report.allocated_memory_by_file.to_h { |h| [h[:data], h[:count]] }
  File.write(out, JSON.generate(by_file))
else
  abort "mode: agent or memory_profiler"
end
