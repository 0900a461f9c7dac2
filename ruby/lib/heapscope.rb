# frozen_string_literal: true
# TODO(runtime helper): the Ruby layer.
require "heapscope/heapscope_native"
