# Memory that grows steadily: every 10 ms, 1,000 strings are appended to a
# global array (never released) and 5,000 temporary ones become garbage, so
# the heap is a sawtooth whose floor keeps rising. A full GC every 0.5 s.
require_relative "common"

$leak = []
run_workload do
  1_000.times { |i| $leak << "leaked entry #{i} #{'x' * 80}" }
  5_000.times { |i| "temporary #{i} #{'y' * 40}".upcase }
end
