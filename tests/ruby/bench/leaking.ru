# A Rack app that leaks: every request keeps 16 KiB in a global array for good.
LEAK = []
run lambda { |env|
  sleep 0.003 # about the time of a small real request, so a run lasts long enough to sample
  LEAK << ("x" * 16_384 + env["PATH_INFO"].to_s)
  body = "kept #{LEAK.size}\n"
  [200, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
}
