# frozen_string_literal: true

module Heapscope
  # `heapscope bench --report memory|gc`: one report over the measured Rack
  # requests. bench sends its warm-up requests, waits for them all, then the
  # measured ones, so counting requests as they enter and leave the
  # middleware is enough to know the phase: the report starts when request
  # `skip + 1` enters and ends when request `skip + requests` leaves, before
  # that response goes out, so the files are complete once bench has every
  # answer. The files go into `bench_report_dir` (private), where bench reads
  # them back: memory.json (and .txt, .html, .pb.gz for --report-out), or
  # gc.json.
  module BenchReport
    KINDS = %w[memory gc].freeze

    @lock = Mutex.new
    @entered = 0
    @left = 0
    @gc_before = nil
    @failed = false
    @running = false

    class << self
      def enabled?
        s = Heapscope.settings
        !s.nil? && KINDS.include?(s[:bench_report]) && !s[:bench_report_dir].to_s.empty? &&
          s[:bench_report_requests].to_i.positive?
      end

      # A request enters the middleware (called inside Heapscope.own).
      def enter
        s = Heapscope.settings
        @lock.synchronize do
          @entered += 1
          begin_report(s) if @entered == s[:bench_report_skip] + 1
        end
      rescue StandardError => e
        fail_with(s, e)
      end

      # A request leaves the middleware (called inside Heapscope.own).
      def leave
        s = Heapscope.settings
        @lock.synchronize do
          @left += 1
          # After a failure there is nothing to end (and a report running
          # now would be the app's own).
          end_report(s) if @left == s[:bench_report_skip] + s[:bench_report_requests] && !@failed
        end
      rescue StandardError => e
        fail_with(s, e)
      end

      private

      def begin_report(settings)
        if settings[:bench_report] == "memory"
          Heapscope.start_report(threads: :all, top: 50)
          @running = true
        else
          @gc_before = RackTools::GcSnapshot.take
        end
      end

      def end_report(settings)
        dir = settings[:bench_report_dir]
        if settings[:bench_report] == "memory"
          return unless @running

          @running = false
          report = Heapscope.stop_report
          # JSON last: bench waits for it, so the other formats are there too.
          %w[txt html pb.gz json].each { |ext| report.write(File.join(dir, "memory.#{ext}")) }
        else
          write_gc(dir, @gc_before, RackTools::GcSnapshot.take, settings[:bench_report_requests])
        end
      end

      def write_gc(dir, before, after, requests)
        require "json"
        stat = {}
        after.stat.each do |k, v|
          b = before.stat[k]
          stat[k] = { before: b, after: v } if v.is_a?(Numeric) && b.is_a?(Numeric)
        end
        types = {}
        after.counts.each do |k, v|
          b = before.counts[k]
          types[k] = { before: b, after: v } if b
        end
        body = JSON.generate({ kind: "gc", requests: requests, pid: Process.pid,
                               seconds: after.time - before.time, stat: stat, count_objects: types })
        Report.write_private(File.join(dir, "gc.json"), body)
      end

      # A report that could not be made: said in the app's log and in an
      # error file bench shows, never raised into the request.
      def fail_with(settings, err)
        return if @failed

        @failed = true
        # Only a report this module started (never the app's own).
        Heapscope.abort_report if @running
        @running = false
        msg = "heapscope: the bench report failed: #{err.class}: #{Heapscope.one_line(err.message)}"
        warn msg
        dir = settings && settings[:bench_report_dir]
        Report.write_private(File.join(dir, "error.txt"), "#{msg}\n") if dir && !dir.empty?
      rescue StandardError
        nil
      end
    end
  end
end
