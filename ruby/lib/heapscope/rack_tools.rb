# frozen_string_literal: true

module Heapscope
  # The Rack profiling pages (`?hs=help`, `?hs=profile-gc`,
  # `?hs=analyze-memory`, `?hs=profile-memory`), served by the Rack middleware
  # to authorized requests only. Every other request, and every request while
  # `rack_tools` is off, goes to the app exactly as if the parameter were
  # absent. Nothing here walks the Ruby heap: profile-gc reads GC counters,
  # analyze-memory reads a dump written by the agent's forked child.
  module RackTools
    ENV_AUTHORIZED = "heapscope.authorized"
    PAGES = {
      "help" => "this list",
      "profile-gc" => "this request's GC runs, GC time, objects and heap pages before and after",
      "analyze-memory" => "the live heap after a full GC (by type, by class, largest and duplicated strings), " \
                          "from a dump written by a forked child, with a link to download it",
      "profile-memory" => "what this request allocates and retains (its own thread only), by gem, file, " \
                          "location, class and string value: Heapscope.report around the app call"
    }.freeze
    FORMATS = %w[html text json].freeze
    MAX_TOP = 1000
    DUMP_NAME = /\Aheap-\d+-\d+-\d+\.dump\z/.freeze
    # Rows of the largest live-heap tables; `hs_top` changes it.
    DEFAULT_TOP = 20

    # A parameter the page cannot use: answered with a 400 page.
    class BadRequest < StandardError; end

    @busy_pid = nil
    @busy_lock = Mutex.new
    @in_flight = 0
    @overlap = 0
    @env_settings = nil

    class << self
      # Whether `env` names a tool (`hs=` in the query string). Cheap: no
      # parsing unless the query string mentions it.
      def wanted?(env)
        qs = env["QUERY_STRING"]
        !qs.nil? && qs.include?("hs=") && !params(env)["hs"].nil?
      end

      # Settings of the running agent, or (for `use Heapscope::Rack::Profiler`
      # in an app that never started it) read once from the environment.
      def settings
        Heapscope.settings || (@env_settings ||= begin
          Heapscope.resolve_settings
        rescue ArgumentError
          { rack_tools: false, rack_token: "" }
        end)
      end

      # `enabled: false` leaves the app untouched, the pages included.
      def enabled?
        s = settings
        s[:rack_tools] == true && s[:enabled] != false
      end

      # In a forked child (a Puma worker): no request of the parent is in
      # flight or being profiled here.
      def after_fork
        @busy_lock = Mutex.new
        @busy_pid = nil
        @in_flight = 0
        @overlap = 0
      end

      # Requests inside the middleware (the profiled one included), and how
      # many others ran at any moment during the profiled one: counters are
      # process-wide, so the page says so.
      def enter
        @busy_lock.synchronize do
          @in_flight += 1
          @overlap += 1 if @busy_pid == Process.pid
        end
      end

      def leave
        @busy_lock.synchronize { @in_flight -= 1 }
      end

      def overlap
        @overlap
      end

      # The middleware's entry for a request that names a tool.
      def call(env, app)
        return app.call(env) unless enabled?

        why = preauthorized(env)
        page = params(env)["hs"]
        if why && page != "profile-gc" && page != "profile-memory"
          # Pages that do not profile the request answer without running the
          # app; if the agent fails, the app answers after all.
          begin
            return respond_safely(env, why) { page_response(env, why, nil) }
          rescue StandardError => e
            return mark(app.call(env), "failed: #{one_line(e)}")
          end
        end

        profile_request(env, app, why)
      end

      # Why this request may use the tools before the app has run, or nil.
      def preauthorized(env)
        return "token" if token_ok?(env)
        return "loopback in #{app_env}" if loopback?(env) && development?

        nil
      end

      def token_ok?(env)
        secret = settings[:rack_token].to_s
        given = env["HTTP_X_HEAPSCOPE_TOKEN"]
        return false if secret.empty? || !given.is_a?(String)

        same_secret?(secret, given)
      end

      # Constant time in the secret's length: every byte is compared whatever
      # differs, and a wrong length still walks the whole secret.
      def same_secret?(secret, given)
        a = secret.b
        b = given.b
        diff = a.bytesize ^ b.bytesize
        b = a if b.bytesize != a.bytesize
        i = 0
        n = a.bytesize
        while i < n
          diff |= a.getbyte(i) ^ b.getbyte(i)
          i += 1
        end
        diff.zero?
      end

      # A direct loopback connection: a proxy on the same host would also
      # connect from loopback, so a request carrying forwarding headers is
      # not counted as local.
      def loopback?(env)
        return false if env["HTTP_X_FORWARDED_FOR"] || env["HTTP_FORWARDED"] || env["HTTP_X_REAL_IP"]

        addr = env["REMOTE_ADDR"].to_s
        addr == "::1" || addr.start_with?("127.") || addr.start_with?("::ffff:127.")
      end

      # RAILS_ENV when set, else RACK_ENV.
      def app_env
        e = ENV["RAILS_ENV"]
        e = ENV["RACK_ENV"] if e.nil? || e.empty?
        e.to_s
      end

      def development?
        %w[development test].include?(app_env)
      end

      def params(env)
        env["heapscope.params"] ||= begin
          out = {}
          env["QUERY_STRING"].to_s.split(/[&;]/).each do |pair|
            k, v = pair.split("=", 2)
            next unless k&.start_with?("hs")

            out[unescape(k)] ||= unescape(v.to_s)
          end
          out
        end
      end

      # Form decoding (`+` and `%XX`), done here so that loading the agent
      # does not load URI into every app.
      def unescape(text)
        text.tr("+", " ").gsub(/%\h\h/) { |m| m[1, 2].hex.chr }.force_encoding(Encoding::UTF_8).scrub
      end

      # Runs the app (which may call Heapscope.authorize_request), measuring
      # it when this process is not profiling another request.
      def profile_request(env, app, why)
        page = params(env)["hs"]
        return profile_memory_request(env, app, why) if page == "profile-memory"

        mine = page == "profile-gc" && claim
        sites = nil
        begin
          failure = nil
          before = begin
            mine ? GcSnapshot.take : nil
          rescue StandardError => e
            failure = e
            nil
          end
          sites = SiteReport.start if mine && !failure
          status, headers, body = app.call(env)
          finish(env, why, page, mine, before, failure, [status, headers, body], sites)
        ensure
          sites&.abort
          release if mine
        end
      end

      # profile-memory: the app call (and the reading of its body) inside
      # Heapscope.report(threads: :current), so other requests' threads never
      # count. Parameters are checked first: a bad one is not profiled and
      # gets its 400 page once the request turns out to be authorized.
      def profile_memory_request(env, app, why)
        opts = begin
          page_format(env)
          { top: top(env), allow_files: regexp(env, "hs_allow_files"), ignore_files: regexp(env, "hs_ignore_files") }
        rescue BadRequest
          nil
        end
        mine = opts && claim
        begin
          failure = nil
          running = false
          if mine
            begin
              Heapscope.start_report(threads: :current, **opts)
              running = true
            rescue StandardError => e
              failure = e
            end
          end
          begin
            response = app.call(env)
          rescue Exception # rubocop:disable Lint/RescueException
            Heapscope.abort_report if running
            raise
          end
          finish_memory(env, why, opts, mine, running, failure, response)
        ensure
          release if mine
        end
      end

      def finish_memory(env, why, opts, mine, running, failure, response)
        status, headers, body = response
        why ||= "Heapscope.authorize_request" if env[ENV_AUTHORIZED] == true
        unless why
          Heapscope.abort_report if running
          return response
        end
        unless opts
          page = respond_safely(env, why) { page_response(env, why, nil) }
          close(body)
          return page
        end
        return mark(response, "skipped: another request is being profiled") unless mine
        return mark(response, "failed: #{one_line(failure)}") if failure

        parts = []
        begin
          begin
            body.each { |part| parts << part }
          ensure
            close(body)
          end
        rescue Exception # rubocop:disable Lint/RescueException
          Heapscope.abort_report
          raise
        end
        response = [status, headers, parts]
        report = begin
          Heapscope.stop_report
        rescue StandardError => e
          return mark(response, "failed: #{one_line(e)}")
        end
        respond_safely(env, why) { memory_page(env, why, report) }
      rescue StandardError => e
        Heapscope.abort_report if running && Heapscope.reporting?
        mark(response, "failed: #{one_line(e)}")
      end

      # The report in the asked format: Report's own HTML page, its
      # memory_profiler-style text, or its JSON.
      def memory_page(env, why, report)
        body, type = case page_format(env)
                     when "json" then [report.to_json + "\n", "application/json"]
                     when "text" then [report.text(color: false), "text/plain; charset=utf-8"]
                     else [report.to_html, "text/html; charset=utf-8"]
                     end
        headers = { "content-type" => type, "cache-control" => "no-store", "content-length" => body.bytesize.to_s,
                    "x-heapscope" => "authorized by #{why}" }
        [200, headers, [body]]
      end

      # After the app: the app's response untouched unless the request is
      # authorized (now, or by the app through Heapscope.authorize_request).
      def finish(env, why, page, mine, before, failure, response, sites = nil)
        status, headers, body = response
        why ||= "Heapscope.authorize_request" if env[ENV_AUTHORIZED] == true
        return response unless why

        if page == "profile-gc"
          return mark(response, "skipped: another request is being profiled") unless mine
          return mark(response, "failed: #{one_line(failure)}") if failure

          # The body's work is part of the request: read it (kept, so the
          # app's response can still go out if the report fails).
          parts = []
          begin
            body.each { |part| parts << part }
          ensure
            close(body)
          end
          response = [status, headers, parts]
          after = GcSnapshot.take
          report = GcReport.new(before, after, env, status, overlap, sites&.stop)
          return respond_safely(env, why) { page_response(env, why, report) }
        end
        page = respond_safely(env, why) { page_response(env, why, nil) }
        close(body)
        page
      rescue StandardError => e
        mark(response, "failed: #{one_line(e)}")
      end

      def claim
        @busy_lock.synchronize do
          return false if @busy_pid == Process.pid

          @busy_pid = Process.pid
          @overlap = @in_flight - 1
          true
        end
      end

      def release
        @busy_lock.synchronize { @busy_pid = nil }
      end

      # The app's own response with a header saying why it is not a report.
      def mark(response, why)
        status, headers, body = response
        headers = headers.dup
        headers["x-heapscope"] = why
        [status, headers, body]
      end

      def close(body)
        body.close if body.respond_to?(:close)
      end

      def one_line(err)
        text = err.is_a?(Exception) ? "#{err.class}: #{err.message}" : err.to_s
        text.gsub(/[^\x20-\x7e]+/, " ")[0, 300]
      end

      # A bad parameter is a 400 page; any other error propagates to the
      # caller, which sends the app's response marked with the reason.
      # Pages are the agent's own work: the heap profiler leaves them out.
      def respond_safely(env, why, &block)
        Heapscope.own(&block)
      rescue BadRequest => e
        render(env, 400, "Bad request", [[:para, e.message]], why, fallback: true)
      end

      def page_format(env)
        f = params(env)["hs_format"] || "html"
        raise BadRequest, "hs_format must be one of #{FORMATS.join(', ')} (got #{f.inspect})" unless FORMATS.include?(f)

        f
      end

      def top(env)
        t = params(env)["hs_top"]
        return DEFAULT_TOP if t.nil?
        raise BadRequest, "hs_top must be a whole number from 1 to #{MAX_TOP} (got #{t.inspect})" unless t.match?(/\A\d{1,7}\z/) && t.to_i.between?(1, MAX_TOP)

        t.to_i
      end

      def regexp(env, key)
        text = params(env)[key]
        return nil if text.nil?

        Regexp.new(text)
      rescue RegexpError => e
        raise BadRequest, "#{key} is not a valid regular expression: #{e.message}"
      end

      # The page `hs=` names, checked parameters first.
      def page_response(env, why, report)
        # Every parameter is checked on every page, so a typo is a 400 anywhere.
        page_format(env)
        top(env)
        regexp(env, "hs_allow_files")
        regexp(env, "hs_ignore_files")
        page = params(env)["hs"]
        case page
        when "help" then help(env, why)
        when "profile-gc" then render(env, 200, "GC profile of this request", report.sections, why, data: report.to_h)
        when "analyze-memory" then analyze(env, why)
        when "download-dump" then download(env)
        when "profile-memory" then profile_memory(env, why)
        else
          raise BadRequest, "unknown page hs=#{page} (known: #{PAGES.keys.join(', ')})"
        end
      end

      def help(env, why)
        rows = PAGES.map { |name, what| ["?hs=#{name}", what] }
        sections = [
          [:table, "Pages", %w[page what], rows],
          [:table, "Parameters", %w[parameter meaning], [
            ["hs_format", "html (default), text or json"],
            ["hs_top", "rows per table, 1 to #{MAX_TOP} (default #{DEFAULT_TOP})"],
            ["hs_allow_files, hs_ignore_files", "profile-memory: regular expressions on file paths"]
          ]],
          [:para, "Allowed because: #{why}. Any request that is not allowed passes through to the app untouched."]
        ]
        render(env, 200, "heapscope Rack tools", sections, why, data: { pages: PAGES })
      end

      # Reached only when the request's parameters are bad (see
      # profile_memory_request), which page_response has already refused.
      def profile_memory(_env, _why)
        raise BadRequest, "profile-memory could not be profiled"
      end

      def analyze(env, why)
        n = top(env)
        agent = Heapscope.agent
        unless agent
          return render(env, 503, "analyze-memory needs the agent",
                        [[:para, "Start it with heapscope run or Heapscope.start: the dump is written by its forked child."]], why)
        end

        path = Heapscope.dump(wait: true, timeout: 300)
        a = Native.analyze_dump(path, n)
        name = File.basename(path)
        link = "?hs=download-dump&hs_dump=#{name}"
        strings = ->(rows) { rows.map { |v, c, m| [text(v), c, m] } }
        sections = [
          [:para, "Live heap after a full GC, from #{name} (written by a forked child; the app did not pause " \
                  "for a heap walk). #{a[:objects]} objects, #{a[:memsize]} bytes; #{a[:agent_objects]} objects of " \
                  "the agent itself left out."],
          [:link, "Download the dump", link],
          [:table, "By type", %w[type objects bytes], strings.call(a[:by_type])],
          [:table, "By class", %w[class objects bytes], strings.call(a[:by_class])],
          [:table, "Largest strings", %w[value length bytes], strings.call(a[:largest_strings])],
          [:table, "Most duplicated strings", %w[value copies bytes], strings.call(a[:duplicated_strings])]
        ]
        data = a.to_h { |k, v| [k, v.is_a?(Array) ? strings.call(v) : v] }
        data[:dump] = name
        data[:download] = link
        render(env, 200, "Live heap", sections, why, data: data)
      end

      # Only dumps of this process's agent, by their generated name.
      def download(env)
        name = params(env)["hs_dump"].to_s
        raise BadRequest, "hs_dump must name a dump of this process (heap-PID-TIME-SEQ.dump)" unless DUMP_NAME.match?(name) && name.start_with?("heap-#{Process.pid}-")

        agent = Heapscope.agent
        dir = agent&.dump_dir
        path = dir && File.join(dir, name)
        unless path && File.file?(path)
          return [404, { "content-type" => "text/plain; charset=utf-8", "cache-control" => "no-store" },
                  ["no such dump (dump_keep may have removed it)\n"]]
        end

        size = File.size(path)
        [200, { "content-type" => "application/octet-stream", "content-length" => size.to_s,
                "content-disposition" => "attachment; filename=\"#{name}\"", "cache-control" => "no-store" },
         FileBody.new(path)]
      end

      # Text from the heap as valid UTF-8 (invalid bytes replaced).
      def text(value)
        value.to_s.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD")
      end

      def escape_html(value)
        value.to_s.gsub(/[&<>"']/, "&" => "&amp;", "<" => "&lt;", ">" => "&gt;", '"' => "&quot;", "'" => "&#39;")
      end

      # Control and bidi-override characters shown as escapes in text
      # output, so a heap string cannot drive the terminal that reads it.
      def escape_text(value)
        value.to_s.gsub(/[\x00-\x1f\x7f\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/) do |c|
          c.ord < 0x100 ? Kernel.format("\\x%02X", c.ord) : Kernel.format("\\u{%X}", c.ord)
        end
      end

      # One page in the requested format. `fallback`: a format error on the
      # error page itself falls back to HTML.
      def render(env, status, title, sections, why, data: nil, fallback: false)
        f = fallback ? (FORMATS.include?(params(env)["hs_format"]) ? params(env)["hs_format"] : "html") : page_format(env)
        body, type = case f
                     when "json" then [json(status, title, sections, data), "application/json"]
                     when "text" then [plain(title, sections), "text/plain; charset=utf-8"]
                     else [html(title, sections), "text/html; charset=utf-8"]
                     end
        headers = { "content-type" => type, "cache-control" => "no-store", "content-length" => body.bytesize.to_s }
        headers["x-heapscope"] = "authorized by #{why}" if why
        [status, headers, [body]]
      end

      def json(status, title, sections, data)
        require "json" # only once a JSON page is asked for: apps without it stay without it
        out = { status: status, title: title }
        if data
          out[:data] = data
        else
          out[:messages] = sections.select { |s| s[0] == :para }.map { |s| s[1] }
        end
        JSON.generate(out) + "\n"
      end

      def plain(title, sections)
        out = +"#{title}\n#{'=' * title.size}\n"
        sections.each do |kind, a, b, c|
          case kind
          when :para then out << "\n#{escape_text(a)}\n"
          when :link then out << "\n#{a}: #{b}\n"
          when :table
            out << "\n#{a}\n"
            widths = b.map(&:size)
            rows = c.map { |r| r.map { |v| cut(escape_text(v)) } }
            rows.each { |r| r.each_with_index { |v, i| widths[i] = [widths[i], [v.size, 80].min].max } }
            out << b.each_with_index.map { |h, i| h.ljust(widths[i]) }.join("  ").rstrip << "\n"
            rows.each { |r| out << r.each_with_index.map { |v, i| v.ljust(widths[i]) }.join("  ").rstrip << "\n" }
            out << "(none)\n" if rows.empty?
          end
        end
        out
      end

      def cut(text)
        text.size > 120 ? "#{text[0, 119]}…" : text
      end

      def html(title, sections)
        out = +"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>#{escape_html(title)}</title>" \
               "<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;margin-bottom:1em}" \
               "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}" \
               "td.n{text-align:right}td code{white-space:pre-wrap;word-break:break-all}</style></head><body>\n" \
               "<h1>#{escape_html(title)}</h1>\n"
        sections.each do |kind, a, b, c|
          case kind
          when :para then out << "<p>#{escape_html(a)}</p>\n"
          when :link then out << "<p><a href=\"#{escape_html(b)}\">#{escape_html(a)}</a></p>\n"
          when :table
            out << "<h2>#{escape_html(a)}</h2>\n<table><tr>"
            b.each { |h| out << "<th>#{escape_html(h)}</th>" }
            out << "</tr>\n"
            c.each do |r|
              out << "<tr>"
              r.each do |v|
                out << (v.is_a?(Numeric) ? "<td class=\"n\">#{v}</td>" : "<td><code>#{escape_html(v)}</code></td>")
              end
              out << "</tr>\n"
            end
            out << "<tr><td colspan=\"#{b.size}\">(none)</td></tr>\n" if c.empty?
            out << "</table>\n"
          end
        end
        out << "</body></html>\n"
      end
    end

    # A dump file streamed in blocks, closed by the server.
    class FileBody
      def initialize(path)
        @path = path
      end

      def each
        return enum_for(:each) unless block_given?

        File.open(@path, "rb") do |f|
          while (chunk = f.read(1 << 16))
            yield chunk
          end
        end
      end
    end

    # Process-wide GC counters at one moment. The hashes are made before
    # reading, so the snapshot barely allocates.
    class GcSnapshot
      attr_reader :stat, :counts, :time

      def self.take
        new.tap(&:read)
      end

      def initialize
        @stat = {}
        @counts = {}
      end

      def read
        GC.stat(@stat)
        ObjectSpace.count_objects(@counts)
        @time = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end
    end

    # The largest new objects of a profile-gc request, by allocation site:
    # the request thread's allocations recorded by Heapscope.report's hooks
    # (no heap walk, no object ids). Its closing full GC runs after the
    # "after" snapshot, so the page's counters do not include it.
    class SiteReport
      TOP = 10

      # Nil (and the page says why) when the app is running a report itself.
      def self.start
        return nil if Heapscope.reporting?

        Heapscope.start_report(threads: :current, top: TOP)
        new
      rescue StandardError
        nil
      end

      def initialize
        @running = true
      end

      # `{retained:, allocated:}`: rows of [site, bytes, objects], largest first.
      def stop
        @running = false
        report = Heapscope.stop_report
        %w[retained allocated].to_h do |kind|
          counts = report.table(kind, "objects", "location", top: 1 << 30).to_h
          [kind.to_sym, report.table(kind, "memory", "location", top: TOP).map { |site, b| [site, b, counts[site].to_i] }]
        end
      rescue StandardError
        nil
      end

      def abort
        return unless @running

        @running = false
        Heapscope.abort_report if Heapscope.reporting?
      end
    end

    # What changed between two snapshots around one request.
    class GcReport
      STATS = %i[count minor_gc_count major_gc_count time total_allocated_objects total_freed_objects
                 heap_live_slots heap_free_slots heap_available_slots heap_eden_pages heap_allocated_pages
                 malloc_increase_bytes oldmalloc_increase_bytes].freeze

      def initialize(before, after, env, status, overlap, sites = nil)
        @sites = sites
        @b = before
        @a = after
        @request = "#{env['REQUEST_METHOD']} #{env['PATH_INFO']}"
        @status = status
        @others = [overlap, 0].max
        @latest = GC.latest_gc_info
      end

      def delta(key)
        a = @a.stat[key]
        b = @b.stat[key]
        a && b ? a - b : nil
      end

      def to_h
        {
          request: @request,
          app_status: @status,
          wall_ms: ((@a.time - @b.time) * 1000).round(3),
          other_requests_overlapping: @others,
          gc_runs: delta(:count),
          minor_gc_runs: delta(:minor_gc_count),
          major_gc_runs: delta(:major_gc_count),
          gc_time_ms: delta(:time),
          objects_allocated: delta(:total_allocated_objects),
          objects_freed: delta(:total_freed_objects),
          stats: STATS.select { |k| @b.stat.key?(k) }.to_h { |k| [k, { before: @b.stat[k], after: @a.stat[k] }] },
          live_objects_by_type: types.to_h { |t, b, a| [t, { before: b, after: a, change: a - b }] },
          latest_gc: @latest.transform_values { |v| v.is_a?(Symbol) ? v.to_s : v },
          largest_new_objects: @sites && @sites.transform_values do |rows|
            rows.map { |site, bytes, objects| { site: site, bytes: bytes, objects: objects } }
          end
        }
      end

      def types
        keys = (@b.counts.keys | @a.counts.keys) - %i[TOTAL FREE]
        rows = keys.map { |k| [k.to_s.sub(/\AT_/, ""), @b.counts[k].to_i, @a.counts[k].to_i] }
        rows.reject { |_, b, a| a == b }.sort_by { |t, b, a| [-(a - b).abs, t] }
      end

      def sections
        h = to_h
        [
          [:para, "#{h[:request]} answered #{h[:app_status]} in #{h[:wall_ms]} ms."],
          [:para, "GC counters are process-wide: #{h[:other_requests_overlapping]} other request(s) ran at some point " \
                  "during this one, and their work (and any other thread's) is counted too."],
          [:table, "This request", %w[measure value], [
            ["GC runs", h[:gc_runs].to_i], ["minor GC runs", h[:minor_gc_runs].to_i],
            ["major GC runs", h[:major_gc_runs].to_i],
            ["GC time (ms)", h[:gc_time_ms] || "not measured by this Ruby"],
            ["objects allocated", h[:objects_allocated].to_i], ["objects freed", h[:objects_freed].to_i]
          ]],
          [:table, "Heap before and after", %w[counter before after change],
           h[:stats].map { |k, v| [k.to_s, v[:before], v[:after], v[:after] - v[:before]] }],
          [:table, "Live objects by type (ObjectSpace.count_objects: allocated minus freed)",
           %w[type before after change], types.map { |t, b, a| [t, b, a, a - b] }],
          [:table, "Latest GC (GC.latest_gc_info)", %w[key value],
           h[:latest_gc].map { |k, v| [k.to_s, v.to_s] }],
        ] + largest_sections
      end

      def largest_sections
        unless @sites
          return [[:para, "Largest new objects are not listed: the app was running a Heapscope.report of its own."]]
        end

        [
          [:table, "Largest new objects still alive after a full GC, by allocation site (this request's thread)",
           %w[site bytes objects], @sites[:retained]],
          [:table, "Largest allocations, by allocation site (this request's thread)",
           %w[site bytes objects], @sites[:allocated]]
        ]
      end
    end
  end

  class << self
    # Lets the current request use the Rack profiling pages (when
    # `rack_tools` is on): call it from the app during the request, e.g. in
    # a before_action for admins, as with rack-mini-profiler.
    def authorize_request(env)
      env[RackTools::ENV_AUTHORIZED] = true
      nil
    end
  end
end
