# frozen_string_literal: true

# The hook of `heapscope require-mem`. The CLI writes this file to a temporary
# directory and loads it with `-r` in RUBYOPT, so it needs neither the native
# extension nor anything outside core Ruby (it must not `require` anything:
# every file it loaded would be charged to the program).
#
# It wraps require, Kernel.require, require_relative and load, and appends
# one JSON line per event to the file named by HEAPSCOPE_REQUIRE_MEM_OUT,
# each with one unbuffered write, so a program that crashes or calls exit!
# still leaves every finished require (and the begin record of each
# unfinished one) behind:
#
#   {"ev":"start","run":R,"pid":P,"ppid":P,"rss":B,"gc":N,"time":S,"script":$0,"cwd":D,"ruby":V}
#   {"ev":"begin","run":R,"id":I,"parent":I|null,"feature":F,"via":"require"|"require_relative"|"load","rss":B,"gc":N,"time":S}
#   {"ev":"end","run":R,"id":I,"result":"loaded"|"already"|"error","error":E,"path":F,"rss":B,"gc":N,"time":S}
#   {"ev":"exit","run":R,"rss":B,"gc":N,"time":S}
#
# RSS is read from /proc/self/statm (resident pages times the page size the
# CLI passes in HEAPSCOPE_REQUIRE_MEM_PAGE). No GC is run: a require is charged
# what it really costs the process, garbage included, the way the program
# itself experiences it; `gc` is GC.count, so a reader can tell which
# requires a collection ran in.
module HeapscopeRequireMem
  OUT_PATH = ENV["HEAPSCOPE_REQUIRE_MEM_OUT"]
  PAGE = (ENV["HEAPSCOPE_REQUIRE_MEM_PAGE"] || "4096").to_i
  STACK_KEY = :__heapscope_require_mem_stack

  @pid = nil
  @out = nil
  @statm = nil
  @run = nil
  @next_id = 0

  class << self
    # A JSON string literal (core Ruby has no JSON without a require).
    def q(s)
      return "null" if s.nil?

      s = s.to_s
      s = s.dup.force_encoding(Encoding::UTF_8)
      s = s.scrub("?") unless s.valid_encoding?
      out = +'"'
      s.each_char do |c|
        case c
        when '"' then out << '\\"'
        when "\\" then out << "\\\\"
        when "\n" then out << "\\n"
        when "\r" then out << "\\r"
        when "\t" then out << "\\t"
        else
          if c.ord < 0x20
            out << format("\\u%04x", c.ord)
          else
            out << c
          end
        end
      end
      out << '"'
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def rss
      @statm.sysseek(0)
      @statm.sysread(128).split(" ", 3)[1].to_i * PAGE
    rescue StandardError
      0
    end

    def emit(line)
      @out.syswrite(line << "\n")
    rescue StandardError
      nil
    end

    # (Re)opens the files for this process: at load, and in a forked child,
    # whose inherited /proc/self/statm would still describe the parent.
    def setup
      return if @pid == Process.pid

      parent_run = @run
      @pid = Process.pid
      @statm&.close rescue nil # rubocop:disable Style/RescueModifier
      @statm = File.open("/proc/self/statm", "r")
      @out = File.open(OUT_PATH, File::WRONLY | File::APPEND | File::CREAT, 0o600)
      @out.sync = true
      @run = "#{@pid}-#{Random.rand(1 << 40).to_s(36)}"
      @next_id = 0
      Thread.current.thread_variable_set(STACK_KEY, [])
      emit(+%({"ev":"start","run":#{q(@run)},"pid":#{@pid},"ppid":#{Process.ppid},) <<
           %("parent_run":#{q(parent_run)},"rss":#{rss},"gc":#{GC.count},"time":#{now},) <<
           %("script":#{q($0)},"cwd":#{q(Dir.pwd)},"ruby":#{q(RUBY_VERSION)}}))
    end

    def measure(feature, via)
      setup
      stack = Thread.current.thread_variable_get(STACK_KEY) ||
              Thread.current.thread_variable_set(STACK_KEY, [])
      id = (@next_id += 1)
      parent = stack.last
      emit(+%({"ev":"begin","run":#{q(@run)},"id":#{id},"parent":#{parent || "null"},) <<
           %("feature":#{q(feature)},"via":"#{via}","rss":#{rss},"gc":#{GC.count},"time":#{now}}))
      features = $LOADED_FEATURES.size
      stack.push(id)
      result = "error"
      error = nil
      begin
        ret = yield
        result = ret ? "loaded" : "already"
        ret
      rescue Exception => e # rubocop:disable Lint/RescueException
        error = "#{e.class}: #{e.message}"[0, 300]
        raise
      ensure
        stack.pop
        path = ($LOADED_FEATURES.last if result == "loaded" && $LOADED_FEATURES.size > features)
        path = feature if via == "load"
        emit(+%({"ev":"end","run":#{q(@run)},"id":#{id},"result":"#{result}","error":#{q(error)},) <<
             %("path":#{q(path)},"rss":#{rss},"gc":#{GC.count},"time":#{now}}))
      end
    end

    # Where require_relative resolves FEATURE from the file that called it.
    def relative(feature, loc)
      return feature if File.absolute_path?(feature)

      base = loc&.absolute_path
      raise LoadError, "cannot infer basepath" if base.nil?

      File.expand_path(feature, File.dirname(File.realpath(base)))
    end

    def finish
      return unless @pid == Process.pid

      emit(+%({"ev":"exit","run":#{q(@run)},"rss":#{rss},"gc":#{GC.count},"time":#{now}}))
    end
  end
end

if HeapscopeRequireMem::OUT_PATH && File.readable?("/proc/self/statm")
  HeapscopeRequireMem.setup
  at_exit { HeapscopeRequireMem.finish }

  # The wrappers are prepended to Object and to Kernel's singleton class
  # rather than aliased inside Kernel: Bundler's setup puts Ruby's own
  # Kernel#require back (dropping anything aliased over it), and other tools
  # redefine Kernel#require or Object#require later. A prepended module stays
  # first in the lookup whatever happens to the methods it wraps.
  module HeapscopeRequireMem
    module ObjectHooks
      private

      def require(feature)
        HeapscopeRequireMem.measure(feature, "require") { super(feature) }
      end

      # Ruby's require_relative resolves against its caller, which would be
      # this file: resolve against the real caller, then require the path.
      def require_relative(feature)
        path = HeapscopeRequireMem.relative(feature, caller_locations(1, 1)&.first)
        HeapscopeRequireMem.measure(path, "require_relative") do
          Kernel.instance_method(:require).bind_call(self, path)
        end
      end

      def load(file, wrap = false)
        HeapscopeRequireMem.measure(file, "load") { super(file, wrap) }
      end
    end

    module KernelHooks
      def require(feature)
        HeapscopeRequireMem.measure(feature, "require") { super(feature) }
      end
    end
  end

  Object.prepend(HeapscopeRequireMem::ObjectHooks)
  Kernel.singleton_class.prepend(HeapscopeRequireMem::KernelHooks)
end
