# Used by crates/cli/tests/agent_stress.rs: allocates a large batch of
# objects, drops them all and collects, so that Ruby frees whole heap pages
# (and gives them back to the system) while the profiler still tracks
# samples from them. ARGV: rounds, objects per round.
rounds = Integer(ARGV[0] || 3)
per_round = Integer(ARGV[1] || 1_500_000)
rounds.times do |r|
  batch = Array.new(per_round) { |i| "obj-#{r}-#{i}" }
  batch = nil
  3.times { GC.start }
  GC.compact if r.odd? && GC.respond_to?(:compact)
  sleep 0.3 # let the agent's thread tick and flush between rounds
end
puts "done #{rounds} rounds"
