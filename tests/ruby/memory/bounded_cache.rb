# A bounded cache: a ring of 150,000 entries filled at the start, as fast as
# the machine goes (a count, not a time, so a slow or busy machine cannot
# stretch the fill over the whole run), then the program keeps working
# (replacing entries, making garbage) at the same level until it ends. Memory
# rises, then levels off. (A Hash with deletes, or strings with malloc'd
# buffers, made RSS creep by ~2 MiB/s for real, through table rebuilds and
# malloc fragmentation: a correct "growing" that made this test flaky.)
require_relative "common"

CAPACITY = 150_000
cache = Array.new(CAPACITY) # a ring: entry `key % CAPACITY` is replaced
key = 0
# Short strings live inside their heap slot (no malloc'd buffer), so
# replacing entries reuses slots instead of fragmenting malloc's heap, which
# would make RSS creep up for real.
def value(key) = "cached #{key}"
while key < CAPACITY
  cache[key] = value(key)
  key += 1
end
run_workload do
  1_500.times do
    cache[key % CAPACITY] = value(key)
    key += 1
  end
  5_000.times { |i| "temp #{i}".upcase }
end
