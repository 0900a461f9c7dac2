# frozen_string_literal: true

# Loaded by the heap profiler when it starts. Ruby's allocation hooks are
# not safe once a second Ractor runs (Ruby 3.1's own allocation tracing
# crashes the same way), so the profiler must turn its hooks off before the
# first Ractor is made. A TracePoint targeted at Ractor.new costs nothing
# elsewhere and leaves Ractor.new's behaviour (and the location it records)
# as it was; where Ruby cannot target it (a C method), a prepended method
# does the same.
module Heapscope
  module RactorGuard
    def self.ractor_started
      Thread.handle_interrupt(Object => :never) { Heapscope::Native.profiler_ractor_started }
    rescue Exception # rubocop:disable Lint/RescueException
      # Never let the guard change what Ractor.new does (e.g. called from a
      # non-main Ractor, where the hooks are off already).
      nil
    end

    # The fallback: runs before Ractor.new.
    module Prepended
      def new(*args, **kwargs, &block)
        Heapscope::RactorGuard.ractor_started
        super
      end
    end

    if defined?(::Ractor) && ::Ractor.respond_to?(:new)
      begin
        TRACE = TracePoint.new(:call) { Heapscope::RactorGuard.ractor_started }
        TRACE.enable(target: ::Ractor.method(:new))
      rescue ArgumentError, NotImplementedError
        ::Ractor.singleton_class.prepend(Prepended)
      end
    end
  end
end
