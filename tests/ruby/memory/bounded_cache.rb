# A bounded cache: 150,000 entries filled during the first second, then the
# program keeps working (replacing entries, making garbage) at the same
# level until it ends. Memory rises, then levels off.
require_relative "common"

CAPACITY = 150_000
cache = {}
deadline = Time.now + RUN_SECONDS
next_gc = Time.now + 0.5
key = 0
while Time.now < deadline
  1_500.times do
    key += 1
    cache[key] = "cached value #{key} #{'x' * 80}"
    cache.delete(key - CAPACITY) if cache.size > CAPACITY
  end
  5_000.times { |i| "temporary #{i} #{'y' * 40}".upcase }
  if Time.now >= next_gc
    GC.start
    next_gc = Time.now + 0.5
  end
  sleep 0.01
end
puts memory_line
