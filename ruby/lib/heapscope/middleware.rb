# frozen_string_literal: true

module Heapscope
  # Counts Rack requests; with `dump_every_requests: N` every Nth request
  # wakes the agent thread, which forks the dump (the request is not
  # delayed). Installed on its own when that setting is on; `use
  # Heapscope::RackMiddleware` also works, and a request passing through
  # more than one copy (explicit use plus the automatic wrap, or nested
  # Rack::Builder maps) is counted once.
  class RackMiddleware
    ENV_KEY = "heapscope.counted"

    # `app` wrapped, unless it already is.
    def self.wrap(app)
      app.is_a?(RackMiddleware) ? app : new(app)
    end

    def initialize(app)
      @app = app
      Heapscope.own { Heapscope.counting[:requests] = true }
    end

    # The middleware's own bookkeeping runs as the agent's own (left out of
    # the heap profiler's profiles); the app it calls is the app's.
    # With `rack_tools` on, a request naming a page (`?hs=...`) goes
    # through RackTools, which answers it only when authorized. Under
    # `heapscope bench --report` each request is counted into BenchReport.
    def call(env)
      return @app.call(env) if Heapscope.own { env[ENV_KEY] }

      bench = false
      tools = Heapscope.own do
        env[ENV_KEY] = true
        bench = BenchReport.enabled? && (BenchReport.enter || true)
        RackTools.enabled? && (RackTools.enter || true)
      end
      begin
        tools && Heapscope.own { RackTools.wanted?(env) } ? RackTools.call(env, @app) : @app.call(env)
      ensure
        Heapscope.own { RackTools.leave } if tools
        Heapscope.own { BenchReport.leave } if bench
        Heapscope.note(:requests)
      end
    end
  end

  # The name to `use` in a config.ru or Rails middleware stack:
  # `use Heapscope::Rack::Profiler` (the same middleware `heapscope run`
  # installs; a request through both is handled once).
  module Rack
    Profiler = RackMiddleware
  end

  # Sidekiq server middleware counting jobs; with `dump_every_jobs: N` every
  # Nth job wakes the agent thread. Installed on its own when that setting
  # is on (`chain.add Heapscope::SidekiqMiddleware` also works).
  class SidekiqMiddleware
    def initialize(*)
      Heapscope.own { Heapscope.counting[:jobs] = true }
    end

    def call(_worker, _job, _queue)
      yield
    ensure
      Heapscope.note(:jobs)
    end
  end
end
