# Memory that grows outside the Ruby heap: every 10 ms, 256 KiB are
# malloc'd through Fiddle and never freed (and written, so the pages count
# in RSS), as a leaking C extension would. The Ruby heap only sees garbage
# (the Fiddle::Pointer wrappers, temporary strings), so live objects stay
# flat while RSS climbs by about 100 MiB over 4 s. A full GC every 0.5 s.
require "fiddle"
require_relative "common"

CHUNK = 256 * 1024
FILL = ("n" * CHUNK).freeze
run_workload do
  Fiddle::Pointer.new(Fiddle.malloc(CHUNK), CHUNK)[0, CHUNK] = FILL
  1_000.times { |i| "temporary #{i}".upcase }
end
