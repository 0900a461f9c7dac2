# A bounded cache: filled with 20 MiB at the start, then entries are only replaced (same size)
# while the program goes on allocating garbage. Memory levels off.
# Usage: ruby bounded.rb [SECONDS=3]. Prints "ready" once started.
seconds = (ARGV[0] || 3).to_f
SLOTS = 320
cache = Array.new(SLOTS) { |i| (i.to_s * 65536)[0, 65536] }
$stdout.sync = true
puts "ready"
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
i = 0
while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
  cache[i % SLOTS] = (i.to_s * 65536)[0, 65536]
  i += 1
  200.times { |j| "temporary #{j}" }
  sleep 0.01
end
