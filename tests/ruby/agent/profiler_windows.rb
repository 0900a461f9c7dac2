# Used by crates/cli/tests/agent_profiler.rs: the profiler with its
# allocation hook on only in some GC intervals (duty < 1). Keeps and churns
# objects evenly, drawing a window (as the agent's thread does every 100 ms)
# every round, so every window has the same mix, and flushes one profile.
# String.new allocates exactly one object on every Ruby (from 3.4 on, `+""`
# allocates the chilled literal and then its copy).
# ARGV: rate, duty, rounds, output file.
require "heapscope/heapscope_native"

rate = Float(ARGV[0])
duty = Float(ARGV[1])
rounds = Integer(ARGV[2])
out = ARGV[3]

KEPT = []

def keep(n)
  n.times { KEPT << String.new } # @kept
end

def churn(n)
  n.times { String.new } # @churn
end

Heapscope::Native.profiler_start(rate, 1_000_000, 16, duty)
rounds.times do
  keep(500)
  churn(5000)
  Heapscope::Native.profiler_tick
end
GC.start # garbage not yet collected would show as in use
Heapscope::Native.profiler_flush(out)
