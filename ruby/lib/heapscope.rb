# frozen_string_literal: true

# heapscope's in-process agent: heap dumps on a signal, on a timer, every N
# Rack requests or Sidekiq jobs; memory and GC statistics over time; and the
# sampling heap profiler. Start it with `Heapscope.start(**options)` or by
# running the app under `heapscope run` (which loads heapscope/autostart).
# Every option is also a HEAPSCOPE_<OPTION> environment variable; keywords
# win over the environment.

require "heapscope/heapscope_native"
require "heapscope/agent"
require "heapscope/middleware"
require "heapscope/rack_tools"
require "heapscope/bench_report"
require "heapscope/integrations"
require "heapscope/fork_hook"
require "heapscope/report"

module Heapscope
  VERSION = "0.1.0"
  # Holds the pid that warned about unknown HEAPSCOPE_* variables (as in
  # heapscope-agent's config.rs).
  WARNED_PID_VARIABLE = "HEAPSCOPE_WARNED_PID"

  # Raised by the API (`Heapscope.dump`) when a dump fails or times out.
  class Error < StandardError; end

  @agent = nil
  @lock = Mutex.new
  @report_lock = Mutex.new
  @report = nil
  @at_exit_installed = false

  class << self
    # The running agent in this process, or nil.
    attr_reader :agent

    # Runs the block with asynchronous exceptions (Thread#kill, Thread#raise,
    # Timeout) held back until it ends. The profiler's native calls run with
    # GC off and call the weak map's methods; an exception must never unwind
    # through them half-way (it would leave GC off), so it is delivered when
    # they return.
    def uninterrupted(&block)
      Thread.handle_interrupt(Object => :never, &block)
    end

    # Runs the block as the agent's own work: the heap profiler leaves what
    # it allocates on this thread out of its profiles (and counts it in
    # their `agent_allocations` comment). Nests.
    def own
      Native.profiler_own(true)
      yield
    ensure
      Native.profiler_own(false)
    end

    # Starts the agent with settings from HEAPSCOPE_* variables, then the
    # keywords (option keys as in `heapscope run --help`, e.g.
    # `dump_every_seconds: 60`). Raises ArgumentError listing every bad
    # setting. Returns the checked settings, or nil when `enabled` is off.
    # Starting twice warns and keeps the running agent.
    def start(**opts)
      settings = resolve_settings(opts)
      return nil unless settings[:enabled]

      @lock.synchronize do
        if @agent
          warn "heapscope: the agent is already running in process #{Process.pid}; " \
               "Heapscope.start ignored"
          return @agent.settings
        end
        agent = Agent.new(settings)
        Native.profiler_count_agent(settings[:profile_agent])
        own do # the profiler starts in agent.start: leave the rest of the start out
          agent.start
          @agent = agent
          install_at_exit
        end
      end
      settings
    end

    # The checked settings these keywords (plus the environment) give,
    # without starting anything. Raises ArgumentError on bad settings.
    def resolve_settings(opts = {})
      env = ENV.to_h.select { |k, _| k.start_with?("HEAPSCOPE_") }
      strings = opts.to_h { |k, v| [k.to_s, setting_text(v)] }
      settings = Native.resolve_settings(env, strings)
      warn_once(settings.delete(:_warnings))
      settings
    end

    # Unknown HEAPSCOPE_* variables are warned about once per process: the
    # pid that warned is kept in the environment, which survives exec
    # (`heapscope run` warns before it execs the app, `bundle exec` execs
    # again).
    def warn_once(warnings)
      return if warnings.empty?
      return if ENV[WARNED_PID_VARIABLE] == Process.pid.to_s

      warnings.each { |w| warn "heapscope: warning: #{w}" }
      ENV[WARNED_PID_VARIABLE] = Process.pid.to_s
    end

    # What `ruby -rheapscope/autostart` (and so `heapscope run`) does: start
    # from the environment; any problem is one `heapscope:` line on stderr
    # and the app runs without the agent.
    def autostart
      start
    rescue ArgumentError, Error => e
      warn "heapscope: #{one_line(e.message)}; the agent is off"
      nil
    rescue StandardError, ScriptError => e
      warn "heapscope: could not start the agent (#{e.class}: #{one_line(e.message)}); " \
           "the agent is off"
      nil
    end

    def running?
      !@agent.nil?
    end

    # The running agent's settings, or nil.
    def settings
      @agent&.settings
    end

    # Stops the agent: the signal handler is removed, the agent thread
    # ends, a profile is flushed and the announcement removed.
    def stop
      agent = @lock.synchronize do
        a = @agent
        @agent = nil
        a
      end
      own { agent&.shutdown(final: true) }
      !agent.nil?
    end

    # Asks for a heap dump now (written by a forked child, like any other).
    # With wait: true, returns the dump's path once it is complete and raises
    # Heapscope::Error if it failed or took longer than `timeout` seconds;
    # with wait: false, returns nil at once.
    def dump(wait: true, timeout: 120)
      agent = @agent or raise Error, "the agent is not running (call Heapscope.start first)"
      own { agent.request_dump(wait: wait, timeout: timeout) }
    end

    # Counts one request or job (:requests / :jobs) and wakes the agent when
    # a periodic dump is due. Called by the middleware.
    def note(kind)
      own do
        n = Native.count(kind)
        @agent&.counted(kind, n)
        n
      end
    rescue StandardError => e
      @agent&.log_error(e)
      nil
    end

    # Kinds (:requests, :jobs) whose middleware is in place in this process.
    def counting
      @counting ||= {}
    end

    # Called by the fork hook in every forked child (not in dump children).
    def after_fork_in_child
      @lock = Mutex.new
      RackTools.after_fork
      own { @agent&.after_fork }
    rescue StandardError => e
      warn "heapscope: the agent could not restart in forked process #{Process.pid} " \
           "(#{e.class}: #{one_line(e.message)}); the agent is off in it"
      @agent = nil
    end

    # Called after Process.daemon (which forks without Process._fork): the
    # daemon, a new process, gets its own agent and announcement at once,
    # and the announcement of the process it replaced (`old_pid`, gone now)
    # is removed.
    def after_daemon(old_pid)
      @lock = Mutex.new
      @agent&.after_fork(immediate: true, old_pid: old_pid)
    rescue StandardError => e
      warn "heapscope: the agent could not restart in daemonised process #{Process.pid} " \
           "(#{e.class}: #{one_line(e.message)}); the agent is off in it"
      @agent = nil
    end

    # The exact allocation report of the block: every allocation of all
    # threads (threads: :current for the calling thread's only), with GC
    # left on; what is still alive after a full GC at the end is retained.
    # Returns a Heapscope::Report. A block that raises leaves every hook
    # off and its exception propagates unchanged.
    def report(top: 50, allow_files: nil, ignore_files: nil, trace: nil, threads: :all)
      raise ArgumentError, "Heapscope.report needs a block" unless block_given?

      start_report(top: top, allow_files: allow_files, ignore_files: ignore_files,
                   trace: trace, threads: threads)
      begin
        yield
      rescue Exception # rubocop:disable Lint/RescueException
        abort_report
        raise
      end
      stop_report
    end

    # Starts an exact allocation report (see `report`) for code that cannot
    # wrap a block; `stop_report` ends it. Raises Heapscope::Error when a
    # report is already running in this process.
    def start_report(top: 50, allow_files: nil, ignore_files: nil, trace: nil, threads: :all)
      unless top.is_a?(Integer) && top.positive?
        raise ArgumentError, "top must be a positive Integer, not #{top.inspect}"
      end
      unless %i[all current].include?(threads)
        raise ArgumentError, "threads must be :all or :current, not #{threads.inspect}"
      end
      if trace && !Array(trace).all? { |c| c.is_a?(Module) }
        raise ArgumentError, "trace must be an Array of classes, not #{trace.inspect}"
      end

      opts = { top: top, allow_files: allow_files, ignore_files: ignore_files, trace: trace }
      @report_lock.synchronize do
        if @report
          raise Error, "a Heapscope report is already running in this process " \
                       "(nested or concurrent Heapscope.report calls are not supported)"
        end
        @report = { opts: opts, thread: Thread.current }
      end
      begin
        own do
          @report[:gc] = gc_figures
          Native.report_start(threads == :current)
        end
      rescue RuntimeError => e
        @report_lock.synchronize { @report = nil }
        raise Error, e.message
      end
      nil
    end

    # Ends the report begun by `start_report` and returns it.
    def stop_report
      state = @report_lock.synchronize { @report }
      raise Error, "no Heapscope report is running (call Heapscope.start_report first)" unless state

      own do
        after = gc_figures
        # No more allocations are recorded; frees still are: what this full
        # GC frees was not retained.
        Native.report_pause
        GC.start
        data = begin
          Native.report_stop
        rescue RuntimeError => e
          raise Error, e.message
        ensure
          @report_lock.synchronize { @report = nil }
        end
        before = state[:gc]
        gc = {
          count: after[:count] - before[:count],
          minor: after[:minor] - before[:minor],
          major: after[:major] - before[:major],
          time_ms: after[:time_ns] && ((after[:time_ns] - before[:time_ns]) / 1e6).round(3)
        }
        Report.new(data, gc: gc, **state[:opts])
      end
    end

    # Whether a report (start_report .. stop_report) is running.
    def reporting?
      @report_lock.synchronize { !@report.nil? }
    end

    # Turns a running report's hooks off and forgets it.
    def abort_report
      own { Native.report_abort }
    ensure
      @report_lock.synchronize { @report = nil }
    end

    def one_line(text)
      text.to_s.gsub(/\s*\n\s*/, " ")
    end

    private

    # GC counters read without allocating (single-key GC.stat).
    def gc_figures
      {
        count: GC.count,
        minor: GC.stat(:minor_gc_count),
        major: GC.stat(:major_gc_count),
        time_ns: GC.respond_to?(:total_time) ? GC.total_time : nil
      }
    end

    def setting_text(value)
      case value
      when true then "1"
      when false then "0"
      when nil then ""
      when Symbol then value.to_s
      else value.to_s
      end
    end

    def install_at_exit
      return if @at_exit_installed

      @at_exit_installed = true
      at_exit do
        begin
          own { @agent&.shutdown(final: true, at_exit: true) }
        rescue StandardError, ScriptError => e
          warn "heapscope: at exit: #{e.class}: #{one_line(e.message)}"
        end
      end
    end
  end
end
