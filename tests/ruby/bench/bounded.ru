# A Rack app with a bounded cache: each request replaces one of 256 entries of 16 KiB, so memory
# fills quickly and then stays level. Allocates garbage per request like a real app.
CACHE = []
COUNTER = [0]
LOCK = Mutex.new
run lambda { |env|
  sleep 0.003 # about the time of a small real request, so a run lasts long enough to sample
  i = LOCK.synchronize { COUNTER[0] += 1 }
  CACHE[i % 256] = "x" * 16_384 + i.to_s
  body = Array.new(20) { |j| "row #{j} #{env['PATH_INFO']}" }.join("\n")
  [200, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
}
