# Required by profiler_names.rb: top-level code of a required file.
LIB_KEEP = Array.new(300) { |i| "lib #{i}" } # @top_required
