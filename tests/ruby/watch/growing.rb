# Memory that grows steadily: every 10 ms, 64 KiB of fresh (unshared) strings are kept for good.
# Usage: ruby growing.rb [SECONDS=3]. Prints "ready" once started (a test may wait for it).
seconds = (ARGV[0] || 3).to_f
kept = []
$stdout.sync = true
puts "ready"
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
i = 0
while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
  16.times { kept << (i.to_s * 4096)[0, 4096] ; i += 1 }
  # Garbage too, so the GC runs as in a real program.
  200.times { |j| "temporary #{j}" }
  sleep 0.01
end
