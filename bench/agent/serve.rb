# frozen_string_literal: true

# One benchmark run: serves REQUESTS requests to the app through
# Rack::MockRequest (no sockets, so the figure is the app's own cost) and
# prints requests per second as JSON. MODE selects what watches the app:
#   none (also used under `heapscope run`), memory_profiler, trace (ObjectSpace
#   allocation tracing).
require_relative "rack_app"

requests = Integer(ENV.fetch("REQUESTS", "20000"))
mode = ENV.fetch("MODE", "none")
mock = Rack::MockRequest.new(BenchApp)
warmup = requests / 10
warmup.times { mock.get("/users?n=20") }

run = lambda do
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  requests.times { |i| mock.get("/users/#{i % 100}?n=20") }
  Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
end

seconds =
  case mode
  when "none" then run.call
  when "memory_profiler"
    require "memory_profiler"
    elapsed = nil
    MemoryProfiler.report { elapsed = run.call }
    elapsed
  when "trace"
    require "objspace"
    ObjectSpace.trace_object_allocations_start
    run.call
  else abort "unknown MODE #{mode}"
  end
puts JSON.generate(mode: mode, requests: requests, seconds: seconds, rps: requests / seconds,
                   agent: defined?(Heapscope::Native) ? true : false)
