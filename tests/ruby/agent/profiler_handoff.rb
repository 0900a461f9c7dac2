# Used by crates/cli/tests/agent_profiler.rs: objects sampled in a hook
# window, then followed only through the weak map once the window closes.
# Rate 0.5 at duty 0.5 samples every allocation inside a window. ARGV: n,
# output file.
require "heapscope/heapscope_native"

N = Heapscope::Native
n = Integer(ARGV[0])
out = ARGV[1]
KEPT = []
dropped = []

def keep(n, into)
  n.times { into << String.new } # @kept
end

def drop(n, into)
  n.times { into << String.new } # @dropped
end

N.profiler_start(0.5, 1_000_000, 16, 0.5) # the first slice is always watched
keep(n, KEPT)
drop(n, dropped)
# Close the window: from now on no free is reported by a hook.
closed = 10_000.times.any? { !N.profiler_tick }
raise "the window never closed" unless closed
dropped = nil
3.times { GC.start }
GC.compact if GC.respond_to?(:compact)
# New objects fill the freed slots while the hooks are off.
REFILL = Array.new(4 * n) { |i| "refill #{i}" }
GC.start
N.profiler_flush(out)
s = N.profiler_stats
puts "tracked=#{s[:tracked]} freed=#{s[:freed]} hook_errors=#{s[:hook_errors]}"
