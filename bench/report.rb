# Heapscope.report against memory_profiler on the same block, one mode per
# process (so one mode's heap does not slow the next):
#
#   ruby -I LIB bench/report.rb time MODE [REPEAT]   # MODE: bare, memory_profiler, heapscope
#   ruby -I LIB bench/report.rb churn MODE [MB]      # peak RSS of a block churning MB of strings
#
# LIB is a staged ruby/lib with the release extension (bench/report.sh
# builds and stages it). Prints one line of JSON.
require "json"
require "rack"
require "rack/mock"

what, mode, arg = ARGV
require "heapscope" if mode == "heapscope"
require "memory_profiler" if mode == "memory_profiler"

APP = lambda do |env|
  req = Rack::Request.new(env)
  body = JSON.generate("name" => req.params["name"], "items" => (1..20).map { |i| { "id" => i, "tag" => "t#{i}" } })
  [200, { "content-type" => "application/json" }, [body]]
end

def work(repeat)
  repeat.times do
    res = Rack::MockRequest.new(APP).get("/items?name=bench")
    JSON.parse(res.body)
  end
end

def churn(mb)
  chunk = "x" * 1024
  (mb * 1024).times { chunk.dup << "y" }
end

def measure(mode)
  case mode
  when "bare" then yield
  when "memory_profiler" then MemoryProfiler.report(top: 50) { yield }.pretty_print(StringIO.new)
  when "heapscope" then Heapscope.report(top: 50) { yield }.pretty_print(StringIO.new)
  else abort "unknown mode #{mode}"
  end
end

def peak_rss_kb
  File.read("/proc/self/status")[/VmHWM:\s+(\d+)/, 1].to_i
end

require "stringio"
case what
when "time"
  repeat = Integer(arg || 2000)
  work(50) # warm up
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  measure(mode) { work(repeat) }
  ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1000
  puts JSON.generate(mode: mode, repeat: repeat, ms: ms.round(1))
when "churn"
  mb = Integer(arg || 5120)
  before = peak_rss_kb
  measure(mode) { churn(mb) }
  puts JSON.generate(mode: mode, churn_mb: mb, peak_rss_mb: (peak_rss_kb / 1024.0).round(1),
                     rss_before_mb: (before / 1024.0).round(1))
else
  abort "usage: report.rb time|churn MODE [N]"
end
