# frozen_string_literal: true

# A program with requires of known cost, for `heapscope require-mem` tests.
# Each file keeps what it allocates in a constant, so the RSS it adds stays.
#
#   heavy_a.rb   30 MiB own, requires nested_b.rb (10 MiB) and shared.rb (2 MiB)
#   heavy_c.rb   15 MiB own, requires shared.rb again (already loaded)
#   light.rb     nothing
#
# REQMEM_MODE changes the ending: "exit3" exits with status 3 after the
# requires, "raise" requires raising.rb (5 MiB, then raises) before heavy_c,
# "exit!" requires dying.rb (5 MiB, then exit! 4 inside the require).
mode = ENV["REQMEM_MODE"].to_s
$LOAD_PATH.unshift(__dir__)
puts "main: start"
require_relative "heavy_a"
require "raising" if mode == "raise"
require_relative "dying" if mode == "exit!"
require "heavy_c"
require_relative "light"
require "shared"
puts "main: done"
exit 3 if mode == "exit3"
