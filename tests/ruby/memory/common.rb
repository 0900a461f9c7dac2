# Shared by the memory programs: the Rails-style log line people add to their
# apps, printed every SAMPLE_INTERVAL seconds from a thread.
$stdout.sync = true

def rss_kb
  File.read("/proc/self/status")[/VmRSS:\s+(\d+)/, 1].to_i
end

def memory_line
  now = Time.now.utc
  "I, [#{now.strftime('%Y-%m-%dT%H:%M:%S.%6N')} ##{Process.pid}]  INFO -- : " \
    "MEMORY[#{Process.pid}]: time: #{now.strftime('%Y-%m-%dT%H:%M:%S.%L%:z')} " \
    "rss: #{rss_kb}, live_objects: #{GC.stat(:heap_live_slots)}"
end

def log_memory_every(interval)
  Thread.new do
    loop do
      puts memory_line
      sleep interval
    end
  end
end

# Runs the block every 10 ms for RUN_SECONDS, with a full GC every 0.5 s,
# then prints a last memory line.
def run_workload
  deadline = Time.now + RUN_SECONDS
  next_gc = Time.now + 0.5
  while Time.now < deadline
    yield
    if Time.now >= next_gc
      GC.start
      next_gc = Time.now + 0.5
    end
    sleep 0.01
  end
  puts memory_line
end

RUN_SECONDS = Float(ENV.fetch("RUN_SECONDS", "4"))
log_memory_every(Float(ENV.fetch("SAMPLE_INTERVAL", "0.05")))
