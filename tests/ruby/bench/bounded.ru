# A Rack app with a bounded cache: each request replaces one of 256 entries, an Array of 40 short
# strings (Ruby heap slots only: no large malloc'd buffers, whose garbage would pile up until
# Ruby's malloc limit triggers a GC and look like growth for seconds). Memory fills within the
# first few hundred requests and then stays level. Allocates small garbage per request like a
# real app.
CACHE = []
COUNTER = [0]
LOCK = Mutex.new
run lambda { |env|
  sleep 0.003 # about the time of a small real request, so a run lasts long enough to sample
  i = LOCK.synchronize { COUNTER[0] += 1 }
  CACHE[i % 256] = Array.new(40) { |j| "entry #{j}" }
  body = Array.new(20) { |j| "row #{j} #{env['PATH_INFO']}" }.join("\n")
  [200, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
}
