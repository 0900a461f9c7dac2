# A tiny simulated web server with a memory leak, to try heapscope on.
#
#   ruby examples/leaky_app.rb [OUT_DIR]          # OUT_DIR defaults to tmp/example-dumps
#   heapscope summary tmp/example-dumps/heap-3.dump --by class
#   heapscope diff tmp/example-dumps/heap-1.dump tmp/example-dumps/heap-2.dump tmp/example-dumps/heap-3.dump
#
# The app (examples/leaky.rb) leaks a LeakedEntry and a String per request
# into a class-level array, and keeps a bounded LRU cache that does not leak.
#
# Three heap dumps are written: after a warm-up, after more requests, and
# after more still. Objects allocated between the first and second dump that
# are still alive in the third are the leak: the LeakedEntry objects and their
# Strings from RequestLog.record, and nothing from the cache.
# Needs no gems; runs in about a second.

require "objspace"
require "fileutils"

ObjectSpace.trace_object_allocations_start # records file, line and generation of each allocation

WARMUP_REQUESTS = 2_000
MORE_REQUESTS = 3_000

require_relative "leaky"

def write_dump(dir, name)
  GC.start
  path = File.join(dir, name)
  tmp = "#{path}.tmp"
  File.open(tmp, "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename(tmp, path)
  path
end

out_dir = ARGV[0] || "tmp/example-dumps"
FileUtils.mkdir_p(out_dir)
app = App.new
next_id = 1
dumps = []

next_id = handle_requests(app, next_id, WARMUP_REQUESTS)
dumps << write_dump(out_dir, "heap-1.dump")
next_id = handle_requests(app, next_id, MORE_REQUESTS)
dumps << write_dump(out_dir, "heap-2.dump")
next_id = handle_requests(app, next_id, MORE_REQUESTS)
dumps << write_dump(out_dir, "heap-3.dump")

puts "Handled #{next_id - 1} requests; the cache holds #{CACHE_ENTRIES} users, " \
     "RequestLog::ENTRIES holds #{RequestLog::ENTRIES.size} entries."
puts "Wrote heap dumps:"
dumps.each { |d| puts "  #{d} (#{(File.size(d) / 1024.0 / 1024).round(1)} MB)" }
puts "Try:"
puts "  heapscope summary #{dumps.last} --by class"
puts "  heapscope diff #{dumps.join(" ")}"
puts "The diff should show #{MORE_REQUESTS} LeakedEntry objects and their Strings retained " \
     "(examples/leaky_app.rb, RequestLog.record), and no cache entries."
