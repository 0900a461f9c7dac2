# frozen_string_literal: true

module Heapscope
  # What a block allocated and kept: returned by `Heapscope.report { }` and
  # `Heapscope.stop_report`. Built from the exact hooks' totals per site
  # (class, file, line, type) and per String value, after the hooks are off.
  class Report
    TYPES = %w[allocated retained].freeze
    METRICS = %w[memory objects].freeze
    NAMES = %w[gem file location class].freeze
    UNITS = %w[B kB MB GB TB PB EB].freeze

    # One site: objects of a class and type allocated at file:line.
    Row = Struct.new(:class_name, :file, :line, :type, :gem, :location,
                     :count, :bytes, :retained, :retained_bytes)
    # One String value at one site.
    StringRow = Struct.new(:value, :location, :allocated, :retained)

    attr_reader :rows, :string_rows, :top, :gc, :peak_live_objects

    # data: Native.report_stop's answer; gc: GC figures taken around the block.
    def initialize(data, gc:, top: 50, allow_files: nil, ignore_files: nil, trace: nil)
      sites, strings, stats = data
      @top = Integer(top)
      @gc = gc
      @peak_live_objects = stats[:peak_live]
      @missed = stats[:missed]
      allow = pattern(allow_files)
      ignore = pattern(ignore_files)
      trace = trace && Array(trace)
      keep_file = lambda do |file|
        (ignore.nil? || !ignore.match?(file)) && (allow.nil? || allow.match?(file))
      end
      names = {}
      gems = {}
      @rows = []
      sites.each do |klass, file, line, type, count, bytes, retained, retained_bytes|
        file = file ? file.force_encoding(Encoding::UTF_8) : "(no name)"
        next unless keep_file.call(file)
        next if trace && !trace.include?(klass)

        name = names.fetch(klass) { names[klass] = Report.class_name(klass) }
        gem = gems.fetch(file) { gems[file] = Report.guess_gem(file) }
        @rows << Row.new(name, file, line, type, gem, "#{file}:#{line}",
                         count, bytes, retained, retained_bytes)
      end
      @string_rows = []
      strings.each do |value, file, line, allocated, retained|
        file = file ? file.force_encoding(Encoding::UTF_8) : "(no name)"
        value&.force_encoding(Encoding::UTF_8)
        next unless keep_file.call(file)
        next if trace && !trace.include?(String)

        @string_rows << StringRow.new(value, "#{file}:#{line}", allocated, retained)
      end
    end

    # Allocations the hooks could not record (0 unless something went wrong).
    attr_reader :missed

    def self.class_name(klass)
      name = klass.is_a?(Module) ? klass.name : nil
      name || "<<Unknown>>"
    end

    # The gem a path belongs to, as memory_profiler guesses it: a gems
    # directory's entry, rubygems itself, the standard library's top-level
    # name, the app's directory above bin/app/lib, or "other".
    def self.guess_gem(path)
      if (m = %r{(?:/gems/.*)*/gems/([^/]+)}.match(path))
        m[1]
      elsif %r{/rubygems[./]}.match?(path)
        "rubygems"
      elsif (m = %r{ruby/\d\.[^/]+/([^/.]+)}.match(path))
        m[1]
      elsif (m = %r{([^/]+/(?:bin|app|lib))}.match(path))
        m[1]
      else
        "other"
      end
    end

    def self.normalize_path(path)
      if (m = %r{(?:/gems/.*)*/gems/([^/]+)(.*)}.match(path))
        "#{m[1]}#{m[2]}"
      elsif (m = %r{ruby/\d\.[^/]+/([^/.]+)(.*)}.match(path))
        "ruby/lib/#{m[1]}#{m[2]}"
      elsif (m = %r{([^/]+/(?:bin|app|lib))(.*)}.match(path))
        "#{m[1]}#{m[2]}"
      else
        path
      end
    end

    def total_allocated = @rows.sum(&:count)
    def total_retained = @rows.sum(&:retained)
    def total_allocated_memsize = @rows.sum(&:bytes)
    def total_retained_memsize = @rows.sum(&:retained_bytes)

    # [[key, value], ...] for one table: type "allocated"/"retained",
    # metric "memory"/"objects", name "gem"/"file"/"location"/"class"; the
    # largest first, ties by key, at most `top`.
    def table(type, metric, name, top: @top)
      attr = { "gem" => :gem, "file" => :file, "location" => :location, "class" => :class_name }.fetch(name)
      value = if type == "allocated"
                metric == "memory" ? :bytes : :count
              else
                metric == "memory" ? :retained_bytes : :retained
              end
      sums = Hash.new(0)
      @rows.each do |r|
        next if type == "retained" && r.retained.zero?

        sums[r[attr]] += r[value]
      end
      sums.sort_by { |k, v| [-v, k] }.first(top)
    end

    # Allocated object counts by builtin type (derailed's perf:allocated_objects).
    def allocated_by_type
      sums = Hash.new(0)
      @rows.each { |r| sums[r.type] += r.count }
      sums.sort_by { |k, v| [-v, k] }
    end

    # [[value, count, [[location, count], ...]], ...] for "allocated" or
    # "retained": Strings grouped by value (nil: a shared String whose value
    # could not be read because the hooks missed a free), the most frequent
    # first.
    def strings(type, top: @top)
      field = type == "allocated" ? :allocated : :retained
      groups = Hash.new { |h, k| h[k] = Hash.new(0) }
      @string_rows.each do |s|
        n = s[field]
        groups[s.value][s.location] += n if n.positive?
      end
      groups.map { |value, locs| [value, locs.values.sum, locs.sort_by { |l, c| [-c, l] }] }
            .sort_by { |value, n, _| [-n, value.to_s] }
            .first(top)
    end

    def to_h
      {
        total_allocated: total_allocated,
        total_allocated_memsize: total_allocated_memsize,
        total_retained: total_retained,
        total_retained_memsize: total_retained_memsize,
        tables: TYPES.to_h do |type|
          [type, METRICS.to_h do |metric|
            [metric, NAMES.to_h { |name| [name, table(type, metric, name).to_h] }]
          end]
        end,
        strings: TYPES.to_h do |type|
          [type, strings(type).map do |value, n, locs|
            { value: value && Report.scrub(value), count: n, locations: locs.to_h }
          end]
        end,
        allocated_by_type: allocated_by_type.to_h,
        gc: @gc,
        peak_live_objects: @peak_live_objects,
        missed: @missed
      }
    end

    def to_json(*args)
      require "json" # only when asked: loading heapscope must not load json into the app
      JSON.generate(to_h, *args)
    end

    # Writes the report by the path's extension: .txt, .json, .html or
    # .pb.gz (pprof); private (0600) and atomic (a temporary file renamed).
    def write(path)
      path = path.to_s
      body = if path.end_with?(".pb.gz")
               return write_pprof(path)
             elsif path.end_with?(".json")
               to_json
             elsif path.end_with?(".html", ".htm")
               to_html
             elsif path.end_with?(".txt")
               text(color: false, scale_bytes: true)
             else
               raise ArgumentError, "Heapscope::Report#write: unknown extension in #{path} " \
                                    "(use .txt, .json, .html or .pb.gz)"
             end
      Report.write_private(path, body)
    end

    def self.write_private(path, body)
      dir = File.dirname(File.expand_path(path))
      tmp = File.join(dir, ".#{File.basename(path)}.#{Process.pid}.#{rand(1 << 32)}.tmp")
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, 0o600) do |f|
        f.binmode
        f.write(body)
        f.flush
        f.fsync
      end
      File.rename(tmp, path)
      path
    rescue StandardError
      File.unlink(tmp) if tmp && File.exist?(tmp)
      raise
    end

    def text(**opts)
      require "stringio"
      io = StringIO.new
      pretty_print(io, **opts)
      io.string
    end

    def inspect
      "#<#{self.class} allocated: #{total_allocated} objects (#{total_allocated_memsize} bytes), " \
        "retained: #{total_retained} objects (#{total_retained_memsize} bytes)>"
    end

    # memory_profiler's layout, then what it lacks (by type, GC, peak).
    def pretty_print(io = $stdout, scale_bytes: false, normalize_paths: false, color: nil,
                     detailed: true, allocated_strings: nil, retained_strings: nil, **)
      # `pp report` calls this with a PP object: show the summary there.
      return io.text(inspect) if defined?(::PP) && io.is_a?(::PP)

      color = io.respond_to?(:tty?) && io.tty? if color.nil?
      fmt_bytes = ->(n) { scale_bytes ? Report.scale(n) : "#{n} bytes" }
      hl = color ? ->(s) { "\e[1m#{s}\e[0m" } : ->(s) { s }
      io.puts "Total allocated: #{fmt_bytes.call(total_allocated_memsize)} (#{total_allocated} objects)"
      io.puts "Total retained:  #{fmt_bytes.call(total_retained_memsize)} (#{total_retained} objects)"
      if detailed
        TYPES.each do |type|
          METRICS.each do |metric|
            NAMES.each do |name|
              io.puts
              io.puts hl.call("#{type} #{metric} by #{name}")
              io.puts "-----------------------------------"
              rows = table(type, metric, name)
              io.puts "NO DATA" if rows.empty?
              rows.each do |key, v|
                key = Report.normalize_path(key) if normalize_paths && %w[file location].include?(name)
                v = Report.scale(v) if metric == "memory" && scale_bytes
                io.puts "#{v.to_s.rjust(10)}  #{Report.escape(key.to_s)}"
              end
            end
          end
        end
      end
      io.puts
      { "allocated" => allocated_strings, "retained" => retained_strings }.each do |type, limit|
        list = strings(type, top: limit || @top)
        next if list.empty?

        io.puts hl.call("#{type.capitalize} String Report")
        io.puts "-----------------------------------"
        list.each do |value, n, locs|
          shown = value.nil? ? "(value unavailable)" : value.inspect
          io.puts "#{n.to_s.rjust(10)}  #{Report.escape(shown)}"
          locs.each do |loc, c|
            loc = Report.normalize_path(loc) if normalize_paths
            io.puts "#{''.rjust(10)}  #{c.to_s.rjust(6)}  #{Report.escape(loc)}"
          end
          io.puts
        end
      end
      io.puts hl.call("allocated objects by type")
      io.puts "-----------------------------------"
      allocated_by_type.each { |t, n| io.puts "#{n.to_s.rjust(10)}  #{t}" }
      io.puts
      io.puts hl.call("GC during the block")
      io.puts "-----------------------------------"
      io.puts "#{@gc[:count].to_s.rjust(10)}  GC runs (#{@gc[:minor]} minor, #{@gc[:major]} major)"
      io.puts "#{format('%.1f', @gc[:time_ms]).rjust(10)}  ms in GC" if @gc[:time_ms]
      io.puts "#{@peak_live_objects.to_s.rjust(10)}  peak live objects allocated in the block"
      io.puts "#{@missed.to_s.rjust(10)}  allocations the hooks could not record" if @missed.positive?
      nil
    end

    def self.scale(bytes)
      return "0 B" if bytes.zero?

      exp = [(Math.log10(bytes) / 3).floor, UNITS.size - 1].min
      format("%.2f %s", bytes / 10.0**(exp * 3), UNITS[exp])
    end

    # Heap strings and paths may hold control or bidi characters: shown as
    # escapes, never sent to a terminal raw.
    def self.escape(text)
      scrub(text).gsub(/[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/) do |c|
        c.ord < 0x100 ? format("\\x%02X", c.ord) : format("\\u{%X}", c.ord)
      end
    end

    def self.scrub(text)
      text = text.dup.force_encoding(Encoding::UTF_8) unless text.encoding == Encoding::UTF_8
      text.valid_encoding? ? text : text.scrub("\uFFFD")
    end

    def self.html(text)
      scrub(text.to_s).gsub(/[&<>"']/, "&" => "&amp;", "<" => "&lt;", ">" => "&gt;",
                                        '"' => "&quot;", "'" => "&#39;")
    end

    # A self-contained page: every table sortable by a click on its header;
    # no network; every string from the heap HTML-escaped.
    def to_html
      h = ->(s) { Report.html(s) }
      out = +"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>heapscope report</title>\n"
      out << "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}" \
             "td,th{border:1px solid #ccc;padding:2px 6px}th{cursor:pointer;background:#eee}" \
             "td.n{text-align:right}</style></head><body>\n"
      out << "<h1>heapscope report</h1>\n<p>Total allocated: #{total_allocated_memsize} bytes " \
             "(#{total_allocated} objects)<br>Total retained: #{total_retained_memsize} bytes " \
             "(#{total_retained} objects)<br>GC runs: #{@gc[:count]}; peak live objects: " \
             "#{@peak_live_objects}</p>\n"
      table_html = lambda do |title, head, rows|
        out << "<h2>#{h.call(title)}</h2>\n<table class=\"sortable\"><thead><tr>"
        head.each { |c| out << "<th>#{h.call(c)}</th>" }
        out << "</tr></thead><tbody>\n"
        rows.each do |row|
          out << "<tr>"
          row.each { |c| out << (c.is_a?(Numeric) ? "<td class=\"n\">#{c}</td>" : "<td>#{h.call(c)}</td>") }
          out << "</tr>\n"
        end
        out << "</tbody></table>\n"
      end
      TYPES.each do |type|
        METRICS.each do |metric|
          NAMES.each do |name|
            table_html.call("#{type} #{metric} by #{name}", [name, metric == "memory" ? "bytes" : "objects"],
                            table(type, metric, name))
          end
        end
      end
      TYPES.each do |type|
        rows = strings(type).flat_map do |value, _n, locs|
          locs.map { |loc, c| [value.nil? ? "(value unavailable)" : value.inspect, loc, c] }
        end
        table_html.call("#{type} strings", %w[value location count], rows)
      end
      table_html.call("allocated objects by type", %w[type objects], allocated_by_type)
      out << <<~JS
        <script>
        document.querySelectorAll("table.sortable th").forEach(function (th, i) {
          th.addEventListener("click", function () {
            var body = th.closest("table").tBodies[0];
            var rows = Array.from(body.rows);
            var idx = Array.from(th.parentNode.children).indexOf(th);
            var asc = th.dataset.asc !== "1"; th.dataset.asc = asc ? "1" : "0";
            rows.sort(function (a, b) {
              var x = a.cells[idx].textContent, y = b.cells[idx].textContent;
              var nx = parseFloat(x), ny = parseFloat(y);
              var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
              return asc ? c : -c;
            });
            rows.forEach(function (r) { body.appendChild(r); });
          });
        });
        </script>
        </body></html>
      JS
      out
    end

    # pprof with the conventional sample types: one sample per site, its
    # stack being the allocation line (no deeper frames are recorded).
    def write_pprof(path)
      samples = @rows.map do |r|
        [r.file, r.line, r.class_name, r.type, r.count, r.bytes, r.retained, r.retained_bytes]
      end
      Native.report_pprof(path, samples) # written 0600, atomically, by heapscope-pprof
      path
    end

    private

    # As memory_profiler reads them: a String is a regular expression's
    # source; several are alternatives.
    def pattern(value)
      case value
      when nil then nil
      when Regexp then value
      else Regexp.new(Array(value).map { |v| v.is_a?(Regexp) ? v.source : v.to_s }.join("|"))
      end
    end
  end
end
