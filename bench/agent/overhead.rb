# frozen_string_literal: true

# Drives the agent overhead benchmark (run through bench/agent.sh): serves the
# same Rack app (rack_app.rb) in fresh processes under each variant, ROUNDS
# times interleaved so machine noise hits every variant alike, and reports
# the median throughput and the overhead against no agent.
require "json"
require "tmpdir"

heapscope = ENV.fetch("BENCH_HEAPSCOPE")
rounds = Integer(ENV.fetch("ROUNDS", "5"))
requests = ENV.fetch("REQUESTS", "20000")
out_dir = ENV.fetch("RESULTS")
serve = File.join(__dir__, "serve.rb")
work = Dir.mktmpdir("heapscope-bench-")

variants = {
  "no agent" => [{}, ["ruby", serve]],
  "agent, default settings" => [{}, [heapscope, "run", "--", "ruby", serve]],
  "agent, profiler off (stats + dump signal)" => [{}, [heapscope, "run", "--no-profile", "--", "ruby", serve]],
  "agent, sample rate 0.1" => [{}, [heapscope, "run", "--sample-rate", "0.1", "--", "ruby", serve]],
  "agent, sample rate 1" => [{}, [heapscope, "run", "--sample-rate", "1", "--", "ruby", serve]],
  "memory_profiler" => [{ "MODE" => "memory_profiler" }, ["ruby", serve]],
  "ObjectSpace.trace_object_allocations" => [{ "MODE" => "trace" }, ["ruby", serve]]
}

rps = Hash.new { |h, k| h[k] = [] }
rounds.times do |round|
  variants.each do |name, (env, cmd)|
    env = env.merge("REQUESTS" => requests)
    line = IO.popen(env, cmd, chdir: work, err: [:child, :out], &:read)
    result = line.lines.map { |l| JSON.parse(l) rescue nil }.compact.last
    abort "#{name}: no result\n#{line}" unless result
    abort "#{name}: the agent was expected\n#{line}" if cmd.first == heapscope && !result["agent"]
    rps[name] << result["rps"]
    warn format("round %d/%d  %-44s %8.0f req/s", round + 1, rounds, name, result["rps"])
  end
end

median = ->(xs) { xs.sort[xs.size / 2] }
base = median.call(rps["no agent"])
rows = variants.keys.map do |name|
  m = median.call(rps[name])
  { "variant" => name, "median_rps" => m.round, "overhead_percent" => ((1 - m / base) * 100).round(1),
    "runs" => rps[name].map(&:round) }
end
overhead = rows.to_h { |r| [r["variant"], r["overhead_percent"]] }
checks = {
  "default settings cost at most 5%" => overhead["agent, default settings"] <= 5.0,
  "rate 1 costs at most half of memory_profiler's overhead" =>
    overhead["agent, sample rate 1"] <= overhead["memory_profiler"] / 2.0
}
report = { "requests_per_run" => Integer(requests), "rounds" => rounds, "variants" => rows, "targets" => checks }
File.write(File.join(out_dir, "agent-overhead.json"), JSON.pretty_generate(report))

puts format("%-44s %10s %9s", "variant", "req/s", "overhead")
rows.each { |r| puts format("%-44s %10d %8.1f%%", r["variant"], r["median_rps"], r["overhead_percent"]) }
checks.each { |k, ok| puts "#{ok ? "met" : "MISSED"}: #{k}" }
FileUtils.rm_rf(work) if defined?(FileUtils)
