# frozen_string_literal: true

# How long the app stops when the agent dumps a big heap. Run under
# `heapscope run` (bench/agent.sh does). Builds a heap of about HEAP_MB
# megabytes, then measures the longest gap seen by a busy main thread, first
# for a quiet stretch, then while a dump is requested from the process itself.
# The gap is what a request in flight would feel: the agent's thread holds
# the VM lock for the fork and its bookkeeping; the dump itself is written by
# the child.
require "json"

heap_mb = Integer(ENV.fetch("HEAP_MB", "1024"))
signal = Integer(ENV.fetch("PAUSE_SIGNAL", "41"))
dump_dir = ENV.fetch("HEAPSCOPE_DUMP_DIR", "tmp/heapscope")

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def rss_mb = File.read("/proc/self/statm").split[1].to_i * 4096 / 1_048_576.0

# Strings of 300 bytes (one slot plus a malloc'd buffer): about 340 bytes each.
kept = []
kept << ("x" * 290 + kept.size.to_s) while rss_mb < heap_mb
GC.start

def longest_gap(seconds)
  longest = 0.0
  last = now
  stop = last + seconds
  while (t = now) < stop
    gap = t - last
    longest = gap if gap > longest
    last = t
  end
  longest
end

before = Dir.glob(File.join(dump_dir, "heap-#{Process.pid}-*.dump"))
quiet = longest_gap(3.0)
requested = now
Process.kill(signal, Process.pid)
during = longest_gap(3.0)
# Wait for the child to finish writing, so the dump is complete and timed.
dump = nil
until (dump = (Dir.glob(File.join(dump_dir, "heap-#{Process.pid}-*.dump")) - before).first)
  sleep 0.1
  abort "no dump after 600 s" if now - requested > 600
end
written = now - requested
puts JSON.generate(objects: kept.size, rss_mb: rss_mb.round, longest_gap_quiet_ms: (quiet * 1000).round(1),
                   longest_gap_during_dump_ms: (during * 1000).round(1), dump_bytes: File.size(dump),
                   dump_seconds: written.round(1))
# The dump stays: bench/agent.sh runs this in a directory it removes (deleting
# it here would race the agent's own check that the dump is complete).
