# frozen_string_literal: true

module Heapscope
  # Ruby 3.1+ sends every fork (Kernel#fork, Process.fork, Puma and Unicorn
  # workers) through Process._fork. In the child the agent gets its own pipe,
  # thread, announcement and files, except in the agent's own dump children,
  # which only write a dump and exit!.
  module ForkHook
    def _fork
      pid = super
      if pid.zero? && !Thread.current[:heapscope_dump_child]
        Heapscope.after_fork_in_child
      end
      pid
    end
  end

  # Process.daemon forks inside the C library's daemon(3), without
  # Process._fork; the surviving process (a new pid) gets its agent here.
  module DaemonHook
    def daemon(*args)
      before = Process.pid
      result = super
      Heapscope.after_daemon(before) if Process.pid != before
      result
    end
  end

  if Process.respond_to?(:_fork)
    Process.singleton_class.prepend(ForkHook)
  end
  Process.singleton_class.prepend(DaemonHook)
end
