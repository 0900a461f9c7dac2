# frozen_string_literal: true

module Heapscope
  # Installs the Rack and Sidekiq middleware without code changes, once the
  # app has loaded Rack::Builder or Sidekiq (the agent usually starts before
  # either is required). A small Kernel#require hook looks after each
  # require (two constant checks while something is still missing), and the
  # agent thread looks again on every wake-up, which covers code loaded by
  # require_relative or load.
  module Integrations
    @wanted = {}
    @done = {}

    class << self
      # Which integrations to install: requests: true, jobs: true.
      def want(requests: false, jobs: false)
        @wanted[:rack] = true if requests
        @wanted[:sidekiq] = true if jobs
        return if @wanted.empty?

        Kernel.prepend(RequireHook) unless Kernel.ancestors.include?(RequireHook)
        check
      end

      def pending?
        @wanted.any? { |k, _| !@done[k] }
      end

      def check
        return unless pending?

        install_rack if @wanted[:rack] && !@done[:rack]
        install_sidekiq if @wanted[:sidekiq] && !@done[:sidekiq]
      end

      private

      def install_rack
        return unless defined?(::Rack::Builder) && ::Rack::Builder.method_defined?(:to_app)

        ::Rack::Builder.prepend(BuilderHook) unless ::Rack::Builder.ancestors.include?(BuilderHook)
        @done[:rack] = true
      end

      def install_sidekiq
        return unless defined?(::Sidekiq)

        add = proc do |chain|
          chain.add(SidekiqMiddleware) unless chain.exists?(SidekiqMiddleware)
        end
        if ::Sidekiq.respond_to?(:default_configuration)
          ::Sidekiq.default_configuration.server_middleware(&add)
        elsif ::Sidekiq.respond_to?(:server_middleware)
          ::Sidekiq.server_middleware(&add)
        else
          return
        end
        @done[:sidekiq] = true
      end
    end

    # Wraps every app Rack::Builder builds (config.ru, Rack::Builder.app).
    module BuilderHook
      def to_app
        RackMiddleware.wrap(super)
      end
    end

    module RequireHook
      private

      def require(*args)
        loaded = super
        Integrations.check if Integrations.pending?
        loaded
      end
    end
  end
end
