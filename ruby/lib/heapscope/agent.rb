# frozen_string_literal: true

require "objspace"

module Heapscope
  # Every thread the agent starts. Its class names it in heap dumps, so that
  # heapscope's analyses can leave it out (each thread's VM stack is about
  # 1 MiB), like everything else in the Heapscope namespace.
  class AgentThread < Thread; end

  # The agent of one process. One thread (named "heapscope") does all the
  # work: it waits on the self-pipe that the dump signal's handler, the
  # middleware and the API write to, with a timeout equal to the next timer
  # due (statistics record, profile flush, periodic dump). Dumps are written
  # by a forked child, so the app pauses only for the fork.
  #
  # Everything it writes is private: directories are created 0700 and files
  # 0600, temporary files with O_EXCL|O_NOFOLLOW; the runtime directory must
  # be the user's own (see docs/agent.md, "Safety and security").
  class Agent
    # Bytes written to the pipe, and the dump reason each stands for.
    WAKE_REASONS = {
      "s" => :signal,
      "r" => :requests,
      "j" => :jobs,
      "a" => :api,
    }.freeze
    # Bytes of `heapscope trace` requests (queued on the dump signal with a
    # value; see TraceRequest in crates/agent/src/config.rs).
    TRACE_BYTES = { "T" => :on, "U" => :off, "Q" => :status }.freeze
    # Reasons that are not queued twice while waiting for their turn.
    COALESCED = %i[signal api timer].freeze
    # How many request/job dumps may wait while one is being written.
    MAX_QUEUED = 8

    attr_reader :settings, :pid, :dump_dir, :stats_path, :runtime_dir

    def initialize(settings)
      @settings = settings
      @base = Dir.pwd
      @dump_dir = File.expand_path(settings[:dump_dir], @base)
      @runtime_dir = Native.runtime_dir(settings[:runtime_dir])
      @runtime_dir = File.expand_path(@runtime_dir, @base)
      @logged = {}
      # The profiler needs Ruby's NEWOBJ hook, which another GC library
      # (Ruby 3.4+, RUBY_GC_LIBRARY; MMTk fires only GC_START and FREEOBJ)
      # may never fire: then it stays off, and dumps and statistics go on.
      @gc_library = settings[:profile] ? Agent.gc_library : nil
      @thread = nil
      @started = {}
      # Allocation tracing: process-wide, so kept across fork (a child
      # inherits Ruby's tracing too). `seq` counts trace requests handled.
      @trace = { seq: 0, by_agent: false, since: nil, message: nil }
      reset_process_state
      @established = true
      @establish_at = nil
    end

    def verbose?
      @settings[:verbose]
    end

    def profiler?
      @settings[:profile] && !@gc_library
    end

    # The GC library this Ruby runs with, when it is not Ruby's own: what
    # `GC.config[:implementation]` says (Ruby 3.4+), else what
    # RUBY_GC_LIBRARY asks for (a Ruby without modular GC ignores the
    # variable, but an app that sets it means to run under that GC). nil for
    # the default GC.
    def self.gc_library
      impl = GC.config[:implementation] if GC.respond_to?(:config)
      [impl, ENV["RUBY_GC_LIBRARY"]].each do |name|
        name = name.to_s.strip
        return name unless name.empty? || name == "default"
      end
      nil
    rescue StandardError
      nil
    end

    # Starts everything. A start that fails half-way undoes what it turned
    # on (allocation tracing, the signal handler, the profiler, the thread,
    # files) before raising, so a refused agent leaves nothing running.
    def start
      # Refused before anything is turned on: a runtime directory that
      # another user owns, others can write to, or that is a symlink.
      begin
        Native.prepare_runtime_dir(@runtime_dir)
      rescue IOError => e
        raise Error, "#{Heapscope.one_line(e.message)}; `heapscope dump` could not trust it"
      end
      prune_announcements
      begin
        start_parts
      rescue Exception # rubocop:disable Lint/RescueException
        undo_start
        raise
      end
      log "agent started in process #{@pid} (#{describe})"
    end

    # What is on, for undo_start: nothing once undone.
    def started_parts
      @started.select { |_, on| on }.keys
    end

    # In a forked child (not a dump child): a pipe, counters, files,
    # announcement and thread of its own. The files and the announcement
    # wait until the child has lived `child_min_lifetime` seconds (unless
    # `immediate`, as for Process.daemon), so short-lived children of
    # fork-per-job apps leave nothing behind. `old_pid`: the process this
    # one replaces (Process.daemon), whose announcement is removed.
    def after_fork(immediate: false, old_pid: nil)
      old = @pipe
      reset_process_state
      begin
        old&.close
      rescue IOError
        nil
      end
      open_pipe
      Native.counts_reset
      begin
        @stats_io&.close
      rescue IOError
        nil
      end
      @stats_io = nil
      @stats_path = nil
      Native.profiler_after_fork if profiler?
      Native.remove_state(@runtime_dir, old_pid) if old_pid
      grace = @settings[:child_min_lifetime]
      if immediate || grace <= 0
        establish
      else
        @established = false
        @establish_at = monotonic + grace
      end
      start_thread
      log "agent restarted in #{old_pid ? 'daemonised' : 'forked'} process #{@pid}"
    end

    # Ends the agent in this process. `final`: also flush the profile,
    # record statistics once more and remove the announcement. An unfinished
    # dump is abandoned (its child killed, its temporary file removed).
    #
    # The dump signal's handler stays installed until the announcement is
    # gone, so a `heapscope dump` that read it never meets the signal's
    # default action (which would end the app). At exit (`at_exit: true`)
    # it is never removed: a late request only writes a byte to the pipe.
    def shutdown(final: true, at_exit: false)
      thread = @thread
      @thread = nil
      thread&.kill
      thread&.join(1)
      if (cur = @current)
        begin
          Process.kill(:KILL, cur[:child])
        rescue SystemCallError
          nil
        end
        File.unlink(cur[:tmp]) if File.exist?(cur[:tmp])
        @current = nil
        # A dump that was renamed into place just before the kill is kept:
        # retention still applies to it.
        prune_after_shutdown if File.exist?(cur[:path])
      end
      return unless final

      # Tracing the agent started ends with it (not at exit: pointless), so
      # a later agent does not take it for the app's and nothing is left on
      # that no `heapscope trace off` can reach.
      stop_own_tracing unless at_exit
      begin
        write_stats if @stats_io
        @stats_io&.close
      rescue StandardError => e
        log_error(e)
      end
      @stats_io = nil
      if profiler?
        flush_profile if @established
        Heapscope.uninterrupted { Native.profiler_stop }
      end
      Native.remove_state(@runtime_dir, @pid)
      prune_announcements
    ensure
      Native.signal_uninstall unless at_exit
    end

    # From the middleware: the nth request or job was counted.
    def counted(kind, n)
      every = kind == :requests ? @settings[:dump_every_requests] : @settings[:dump_every_jobs]
      return unless every.positive? && (n % every).zero?

      Native.wake(kind == :requests ? 114 : 106) # "r" / "j"
    end

    # From Heapscope.dump.
    def request_dump(wait:, timeout:)
      waiter = Queue.new if wait
      @lock.synchronize do
        @api_waiters << waiter if waiter
        @api_requests += 1
      end
      Native.wake(97) # "a"
      return nil unless waiter

      result = pop_with_timeout(waiter, timeout)
      raise Error, "the dump did not finish within #{timeout} seconds" if result.nil?
      raise Error, result[:error] unless result[:state] == "done"

      result[:path]
    end

    def log(message)
      warn "heapscope: #{message}" if verbose?
    end

    # Logs an unexpected error once per distinct message.
    def log_error(err)
      text = "#{err.class}: #{Heapscope.one_line(err.message)}"
      return if @logged.key?(text) || @logged.size > 100

      @logged[text] = true
      warn "heapscope: #{text} (in process #{Process.pid}; the agent keeps going)"
    end

    private

    def start_parts
      if @settings[:trace_allocations]
        ObjectSpace.trace_object_allocations_start
        @started[:trace] = true
        @trace.merge!(by_agent: true, since: Time.now.to_f)
      end
      begin
        removed = Native.remove_stale_temps(@dump_dir)
        removed.each { |p| log "removed #{p}, left by a dump that was cut short" }
      rescue StandardError => e
        log_error(e)
      end
      open_pipe
      @started[:pipe] = true
      if @settings[:dump_signal]
        Native.signal_install(@settings[:dump_signal])
        @started[:signal] = true
      end
      if @gc_library
        warn "heapscope: Ruby runs with the GC library #{@gc_library.inspect} " \
             "(RUBY_GC_LIBRARY, not the default GC): the heap profiler stays off, since it " \
             "needs Ruby's allocation hook, which other GC libraries may not fire; dumps and " \
             "statistics go on"
      end
      if profiler?
        Native.profiler_start(@settings[:sample_rate], @settings[:max_samples],
                              @settings[:max_frames], @settings[:sample_duty])
        @started[:profiler] = true
        @next_window = monotonic + WINDOW_SLICE if windowed_profiler?
        # The profile directory now, so an unwritable one stops the start
        # rather than every flush.
        profile_dir
      end
      open_stats
      @started[:stats] = true
      Integrations.want(requests: @settings[:dump_every_requests].positive? || @settings[:rack_tools] ||
                                  !@settings[:bench_report].to_s.empty?,
                        jobs: @settings[:dump_every_jobs].positive?)
      write_state(raise_errors: true)
      @started[:state] = true
      start_thread
      @started[:thread] = true
    end

    # Turns off whatever start_parts turned on; never raises.
    def undo_start
      [
        -> { @thread&.kill&.join(1) },
        -> { Native.signal_uninstall if @started[:signal] },
        -> { Heapscope.uninterrupted { Native.profiler_stop } if @started[:profiler] },
        -> { ObjectSpace.trace_object_allocations_stop if @started[:trace] },
        -> { @stats_io&.close },
        -> { @pipe&.close },
        -> { Native.remove_state(@runtime_dir, @pid) if @started[:state] },
      ].each do |step|
        step.call
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
      @thread = nil
      @stats_io = nil
      @pipe = nil
      @started = {}
    end

    # Removes announcements of this user's processes that are gone (or
    # whose pid now names another process): forked children that ended
    # with exit!, apps killed with SIGKILL.
    def prune_announcements
      Native.remove_stale_states(@runtime_dir).each { |p| log "removed stale #{p}" }
    rescue StandardError => e
      log_error(e)
    end

    # Files and the announcement of a forked child, once it has lived long
    # enough (or at once when a dump is asked for).
    def establish
      @established = true
      @establish_at = nil
      open_stats
      write_state
    end

    # The directory of the next profile, created 0700 when missing.
    def profile_dir
      path = Native.expand_path(@settings[:profile_path], @base, Process.pid, time_text, 0)
      Native.mkdir_private(File.dirname(path))
      path
    end

    def describe
      parts = []
      parts << "dump on #{Native.signal_name(@settings[:dump_signal])}" if @settings[:dump_signal]
      parts << "every #{@settings[:dump_every_seconds]}s" if @settings[:dump_every_seconds].positive?
      parts << "every #{@settings[:dump_every_requests]} requests" if @settings[:dump_every_requests].positive?
      parts << "every #{@settings[:dump_every_jobs]} jobs" if @settings[:dump_every_jobs].positive?
      parts << "dumps in #{@dump_dir}"
      parts << "stats to #{@stats_path}" if @stats_path
      parts << "profiler on" if profiler?
      parts << "profiler off (GC library #{@gc_library})" if @gc_library
      parts.join(", ")
    end

    def reset_process_state
      @pid = Process.pid
      @started_at = Time.now.to_f
      @lock = Mutex.new
      @seq = 0
      @last_dump = nil
      @pending = []
      @current = nil
      @finished = Queue.new
      @api_requests = 0
      @api_waiters = []
      @current_waiters = []
      now = monotonic
      @next_stats = @settings[:stats] ? now : nil
      @next_profile = @settings[:profile_interval].positive? ? now + @settings[:profile_interval] : nil
      @next_dump = @settings[:dump_every_seconds].positive? ? now + @settings[:dump_every_seconds] : nil
      # The profiler's hook windows: one draw per slice (see profiler_tick).
      @next_window = windowed_profiler? ? now + WINDOW_SLICE : nil
      @next_prune = now + PRUNE_INTERVAL
    end

    # Seconds between sweeps of stale announcements in the runtime directory.
    PRUNE_INTERVAL = 60

    # Seconds per profiler window slice.
    WINDOW_SLICE = 0.1

    def windowed_profiler?
      profiler? && Native.profiler_windowed?
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def open_pipe
      @pipe = IO.for_fd(Native.pipe_open, autoclose: true)
    end

    def open_stats
      @stats_path = nil
      return unless @settings[:stats]

      @stats_path = Native.expand_path(@settings[:stats_path], @base, @pid, time_text, 0)
      Native.mkdir_private(File.dirname(@stats_path))
      @stats_io = File.open(@stats_path,
                            File::WRONLY | File::CREAT | File::APPEND | File::NOFOLLOW, 0o600)
      @stats_io.sync = true
    end

    def time_text
      Time.now.utc.strftime("%Y%m%dT%H%M%SZ")
    end

    def write_state(raise_errors: false)
      return unless @established

      Native.write_state(@runtime_dir, {
                           pid: @pid,
                           started_at: @started_at,
                           dump_signal: @settings[:dump_signal],
                           dump_dir: @dump_dir,
                           stats_path: @stats_path,
                           profile_path: profiler? ? File.expand_path(@settings[:profile_path], @base) : nil,
                           last_dump: @last_dump,
                           trace: @trace.merge(active: Agent.tracing?),
                         })
    rescue StandardError => e
      raise if raise_errors

      log_error(e)
    end

    def start_thread
      @thread = AgentThread.new { run }
      Native.profiler_own_thread(@thread) # before it runs: its allocations stay out of profiles
      @thread.name = "heapscope"
      @thread.report_on_exception = false
    end

    def run
      loop do
        begin
          ready = IO.select([@pipe], nil, nil, next_timeout)
          drain_pipe if ready
          tick
        rescue StandardError => e
          log_error(e)
          sleep 0.05
        end
      end
    end

    def next_timeout
      due = [@next_stats, @next_profile, @next_dump, @next_window, @establish_at,
             @next_prune].compact.min
      return nil unless due

      [due - monotonic, 0].max
    end

    def drain_pipe
      loop do
        bytes = @pipe.read_nonblock(4096, exception: false)
        break if bytes.nil? || bytes == :wait_readable

        bytes.each_char do |c|
          if (op = TRACE_BYTES[c])
            trace_request(op)
            next
          end
          reason = WAKE_REASONS[c]
          enqueue(reason) if reason && reason != :api
        end
      end
    end

    # Whether new objects get file, line and generation now, whoever turned
    # tracing on: Ruby has no query for it, so an object of our own is
    # allocated and asked where it came from.
    def self.tracing?
      !ObjectSpace.allocation_sourcefile(Object.new).nil?
    end

    # `heapscope trace PID on|off` (or a status request): turns tracing on
    # or off, stopping only tracing the agent started (Ruby counts starts,
    # so the app's own tracing is never undone), and announces the outcome
    # with a new `seq`, which the CLI waits for.
    def trace_request(op)
      establish unless @established
      message =
        case op
        when :on then trace_on
        when :off then trace_off
        end
      @trace[:seq] += 1
      @trace[:message] = message
      write_state
      log message if message
    rescue StandardError => e
      @trace[:seq] += 1
      @trace[:message] = "the trace request failed: #{e.class}: #{Heapscope.one_line(e.message)}"
      write_state
      log_error(e)
    end

    def trace_on
      if @trace[:by_agent]
        "allocation tracing was already on (started by heapscope)"
      elsif Agent.tracing?
        "allocation tracing was already on, started by the app; heapscope leaves it to the app"
      else
        ObjectSpace.trace_object_allocations_start
        @started[:trace] = true
        @trace.merge!(by_agent: true, since: Time.now.to_f)
        "allocation tracing started"
      end
    end

    def stop_own_tracing
      return unless @trace[:by_agent]

      ObjectSpace.trace_object_allocations_stop
      @started[:trace] = false
      @trace.merge!(by_agent: false, since: nil)
    rescue StandardError => e
      log_error(e)
    end

    def trace_off
      if @trace[:by_agent]
        ObjectSpace.trace_object_allocations_stop
        @started[:trace] = false
        @trace.merge!(by_agent: false, since: nil)
        if Agent.tracing?
          "heapscope's allocation tracing stopped, but the app traces allocations too: still on"
        else
          "allocation tracing stopped"
        end
      elsif Agent.tracing?
        "allocation tracing was started by the app, not by heapscope; heapscope leaves it on"
      else
        "allocation tracing was already off"
      end
    end

    def enqueue(reason)
      if COALESCED.include?(reason)
        return if @pending.include?(reason)
      elsif @pending.count(reason) >= MAX_QUEUED
        return
      end
      @pending << reason
    end

    def tick
      Integrations.check if Integrations.pending?
      api = @lock.synchronize do
        n = @api_requests
        @api_requests = 0
        n
      end
      enqueue(:api) if api.positive?
      finish_dump(*@finished.pop) until @finished.empty?
      now = monotonic
      establish if @establish_at && now >= @establish_at
      if now >= @next_prune
        prune_announcements
        @next_prune = now + PRUNE_INTERVAL
      end
      if @next_stats && now >= @next_stats
        write_stats
        @next_stats = now + [@settings[:stats_interval], 0.01].max
      end
      if @next_profile && now >= @next_profile
        flush_profile if profiler? && @established
        @next_profile = now + @settings[:profile_interval]
      end
      if @next_window && now >= @next_window
        Heapscope.uninterrupted { Native.profiler_tick }
        @next_window = now + WINDOW_SLICE
      end
      if @next_dump && now >= @next_dump
        enqueue(:timer)
        @next_dump = now + @settings[:dump_every_seconds]
      end
      start_dump(@pending.shift) if @current.nil? && !@pending.empty?
    end

    def write_stats
      return unless @stats_io

      requests = Heapscope.counting[:requests] ? Native.count_value(:requests) : nil
      jobs = Heapscope.counting[:jobs] ? Native.count_value(:jobs) : nil
      @stats_io.write(Native.stats_line(requests, jobs, @gc_library && "gc_library"))
    end

    def flush_profile
      path = profile_dir
      Heapscope.uninterrupted { Native.profiler_flush(path) }
      log "profile written to #{path}"
    rescue StandardError => e
      log_error(e)
    end

    def start_dump(reason)
      establish unless @established
      @seq += 1
      final, tmp = Native.dump_paths(@dump_dir, @pid, Time.now.to_i, @seq)
      if reason == :api
        @lock.synchronize do
          @current_waiters = @api_waiters
          @api_waiters = []
        end
      end
      @last_dump = { seq: @seq, path: final, state: "writing", error: nil, reason: reason.to_s }
      write_state
      begin
        Native.mkdir_private(@dump_dir)
        err_r, err_w = IO.pipe
        child = fork_dump_child(tmp, final, err_w)
      rescue StandardError => e
        err_r&.close
        err_w&.close unless err_w&.closed?
        fail_dump("could not start the dump: #{e.class}: #{Heapscope.one_line(e.message)}")
        return
      end
      err_w.close
      @current = { child: child, seq: @seq, path: final, tmp: tmp, reason: reason,
                   err: err_r, started: monotonic }
      log "writing heap dump #{final} (#{reason}) in child #{child}"
      finished = @finished
      AgentThread.new do
        Native.profiler_own(true) # the agent's own thread (pruned once it ends)
        status = begin
          Process.wait2(child)[1]
        rescue SystemCallError
          nil
        end
        finished << [child, status]
        Native.wake(119) # "w"
      end
    end

    def prune_after_shutdown
      Native.prune_dumps(@dump_dir, @pid, @settings[:dump_keep])
    rescue StandardError => e
      log_error(e)
    end

    def fork_dump_child(tmp, final, err_w)
      parent = Process.pid
      Thread.current[:heapscope_dump_child] = true
      child = Process.fork
      return child if child

      write_dump(tmp, final, err_w, parent) # never returns
    ensure
      Thread.current[:heapscope_dump_child] = false
    end

    # In the dump child: everything ends in exit!, so no at_exit handler or
    # finalizer of the app runs here.
    def write_dump(tmp, final, err_w, parent)
      Native.signal_uninstall
      exit!(3) unless Native.set_pdeathsig(parent)
      Native.profiler_pause # a no-op when the profiler is off
      GC.start if @settings[:dump_gc]
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL | File::NOFOLLOW, 0o600) do |f|
        ObjectSpace.dump_all(output: f)
        f.flush
        f.fsync
      end
      File.rename(tmp, final)
      begin
        File.open(File.dirname(final), &:fsync)
      rescue SystemCallError
        nil
      end
      exit!(0)
    rescue Exception => e # rubocop:disable Lint/RescueException
      begin
        err_w.write("#{e.class}: #{Heapscope.one_line(e.message)}")
        err_w.close
        File.unlink(tmp) if File.exist?(tmp)
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
      exit!(1)
    end

    def finish_dump(child, status)
      cur = @current
      return unless cur && cur[:child] == child

      @current = nil
      reason = cur[:err].read_nonblock(4096, exception: false)
      cur[:err].close
      reason = nil unless reason.is_a?(String) && !reason.empty?
      if status&.success? && File.exist?(cur[:path])
        secs = monotonic - cur[:started]
        log format("heap dump written to %<path>s (%<mb>.1f MB in %<s>.2fs)",
                   path: cur[:path], mb: File.size(cur[:path]) / 1_048_576.0, s: secs)
        # Retention first, so whoever sees "done" sees the kept set.
        removed = Native.prune_dumps(@dump_dir, @pid, @settings[:dump_keep])
        removed.each { |p| log "removed old dump #{p} (dump_keep #{@settings[:dump_keep]})" }
        @last_dump = @last_dump.merge(state: "done", error: nil)
        write_state
        notify_waiters(state: "done", path: cur[:path])
      elsif status.nil? && File.exist?(cur[:path])
        # Reaped by the app (Process.wait(-1)), but the rename only
        # happens once the dump is complete.
        @last_dump = @last_dump.merge(state: "done", error: nil)
        write_state
        notify_waiters(state: "done", path: cur[:path])
      else
        File.unlink(cur[:tmp]) if File.exist?(cur[:tmp])
        why = reason || child_status_text(status)
        fail_dump(why)
      end
    end

    def child_status_text(status)
      if status.nil?
        "the dump child #{@pid} was reaped by someone else before it finished"
      elsif status.signaled?
        "the dump child was killed by signal #{status.termsig}"
      else
        "the dump child exited with status #{status.exitstatus}"
      end
    end

    def fail_dump(why)
      @last_dump = @last_dump.merge(state: "failed", error: why)
      write_state
      warn "heapscope: heap dump #{@last_dump[:path]} failed: #{why}"
      notify_waiters(state: "failed", error: "heap dump failed: #{why}")
    end

    def notify_waiters(result)
      waiters = @current_waiters
      @current_waiters = []
      waiters.each { |q| q << result }
    end

    def pop_with_timeout(queue, timeout)
      deadline = monotonic + timeout
      loop do
        return queue.pop(true)
      rescue ThreadError
        return nil if monotonic > deadline

        sleep 0.02
      end
    end
  end
end
