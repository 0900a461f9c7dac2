# Used by crates/cli/tests/agent_profiler.rs: the parent retains strings at
# `# @parent`, forks; the child calls profiler_after_fork, retains strings at
# `# @child` and flushes its own file. ARGV: n, output dir.
require "heapscope/heapscope_native"

N = Heapscope::Native
n = Integer(ARGV[0])
out = ARGV[1]
KEPT = []

def keep_parent(n)
  n.times { KEPT << "" } # @parent
end

def keep_child(n)
  n.times { KEPT << "" } # @child
end

N.profiler_start(1.0, 1_000_000, 64)
keep_parent(n)
pid = Process.fork do
  N.profiler_after_fork
  after = N.profiler_stats
  keep_child(n / 2)
  N.profiler_flush("#{out}/child.pprof.gz")
  File.write("#{out}/child_stats.txt", "running=#{N.profiler_running?} after_fork_sampled=#{after[:sampled]} " \
    "after_fork_tracked=#{after[:tracked]}\n")
  exit!(0)
end
Process.wait(pid)
raise "child failed: #{$?.inspect}" unless $?.success?
# The heap-dump child: profiler_pause only turns the hooks off.
pid = Process.fork do
  N.profiler_pause
  100.times { KEPT << "" }
  File.write("#{out}/paused.txt", "running=#{N.profiler_running?} sampled=#{N.profiler_stats[:sampled]}\n")
  exit!(0)
end
Process.wait(pid)
raise "paused child failed: #{$?.inspect}" unless $?.success?
N.profiler_flush("#{out}/parent.pprof.gz")
