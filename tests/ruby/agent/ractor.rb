# Used by crates/cli/tests/agent_stress.rs: a Ractor that allocates. The
# agent must keep its allocation hook off while a second Ractor exists.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
r = Ractor.new { 300_000.times { |i| "x#{i}" }; :ok }
v = r.respond_to?(:value) ? r.value : r.take
puts "ractor said #{v}"
