# frozen_string_literal: true

# Loaded by `heapscope profile` through RUBYOPT (`-rheapscope/profile_run`):
# starts Heapscope.report before the program's first line and writes it at
# exit. The at_exit hook is registered here, before any of the program's,
# so Ruby runs it last. It never changes the program's exit status: a
# failure is one `heapscope:` line on stderr.
begin
  require "heapscope"
rescue StandardError, ScriptError => e
  warn "heapscope: could not load the agent (#{e.class}: #{e.message.to_s.gsub(/\s*\n\s*/, ' ')}); " \
       "no report"
else
  module Heapscope
    # The report of a whole run, driven by HEAPSCOPE_REPORT_* variables.
    module ProfileRun
      class << self
        def start(env = ENV)
          # Only the process heapscope exec'd: Rubies it spawns inherit RUBYOPT.
          pid = env["HEAPSCOPE_REPORT_PID"].to_s
          return if !pid.empty? && pid.to_i != Process.pid

          begin
            opts = options(env)
          rescue ArgumentError, RegexpError => e
            # Before the program's first line: it does not run with a bad setting.
            warn "heapscope: profile: #{Heapscope.one_line(e.message)}"
            exit 2
          end
          out = env["HEAPSCOPE_REPORT_OUT"].to_s
          me = Process.pid
          # Registered before the report starts: its block is no allocation
          # of the program's.
          at_exit { finish(out) if @started && Process.pid == me }
          Heapscope.start_report(**opts)
          @started = true
        rescue Heapscope::Error => e
          warn "heapscope: profile: #{Heapscope.one_line(e.message)}; the program runs without a report"
        end

        def options(env)
          top = env["HEAPSCOPE_REPORT_TOP"].to_s
          top = top.empty? ? 50 : Integer(top, 10)
          threads = case env["HEAPSCOPE_REPORT_THREADS"].to_s
                    when "", "all" then :all
                    when "main" then :current
                    else raise ArgumentError, "HEAPSCOPE_REPORT_THREADS must be all or main"
                    end
          allow = env["HEAPSCOPE_REPORT_ALLOW_FILES"]
          ignore = env["HEAPSCOPE_REPORT_IGNORE_FILES"]
          { top: top, threads: threads,
            allow_files: allow && Regexp.new(allow), ignore_files: ignore && Regexp.new(ignore) }
        end

        # stderr unless -o named a file; errors are reported, never raised.
        def finish(out)
          report = Heapscope.stop_report
          if out.empty?
            report.pretty_print($stderr, scale_bytes: true)
          else
            report.write(out)
            warn "heapscope: report written to #{out}"
          end
        rescue StandardError, ScriptError => e
          warn "heapscope: profile: the report failed (#{e.class}: #{Heapscope.one_line(e.message)})"
        end
      end
    end
  end
  Heapscope::ProfileRun.start
end
