# The leaking app of examples/leaky.rb as a long-running service, to try the
# heapscope agent on without changing any code:
#
#   heapscope run --trace-allocations -- ruby examples/leaky_service.rb &
#   heapscope dump $!        # three times, a few seconds apart
#   heapscope leaks tmp/heapscope/heap-*.dump
#
# It handles about RATE requests per second (default 2000) until it gets
# SIGINT or SIGTERM, or for RUN_SECONDS seconds when that is set.

require_relative "leaky"

rate = Integer(ENV.fetch("RATE", "2000"))
seconds = ENV["RUN_SECONDS"]&.then { |s| Float(s) }
stop = false
%w[INT TERM].each { |sig| Signal.trap(sig) { stop = true } }

app = App.new
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
next_id = 1
$stdout.sync = true
puts "leaky_service: pid #{Process.pid}, #{rate} requests/s"
until stop
  next_id = handle_requests(app, next_id, rate / 10)
  elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  break if seconds && elapsed >= seconds

  # Pace to about RATE requests per second.
  ahead = (next_id - 1).fdiv(rate) - elapsed
  sleep ahead if ahead.positive?
end
puts "leaky_service: handled #{next_id - 1} requests, RequestLog holds #{RequestLog::ENTRIES.size}"
