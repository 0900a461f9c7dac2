# Used by crates/cli/tests/agent_stress.rs: many threads allocating and
# dropping strings, arrays and hashes under the agent's default settings, so
# hook windows open and close, flushes run and GC frees (and Ruby releases)
# heap pages while tracked objects die. ARGV: threads, seconds.
threads = Integer(ARGV[0] || 32)
seconds = Float(ARGV[1] || 8)
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
workers = Array.new(threads) do |t|
  Thread.new do
    kept = []
    i = 0
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      s = "t#{t}-#{i}" * (i % 7 + 1)
      a = Array.new(i % 13) { |j| j.to_s }
      h = { s => a, i => s.dup }
      kept << h if i % 97 == 0
      kept.shift if kept.size > 200
      i += 1
    end
    i
  end
end
total = workers.sum(&:value)
puts "allocated in #{threads} threads: #{total} rounds"
