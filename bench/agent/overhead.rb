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
  # What memory_profiler records per allocation: the allocating line and class.
  "agent, sample rate 1, 1 frame" =>
    [{}, [heapscope, "run", "--sample-rate", "1", "--max-frames", "1", "--", "ruby", serve]],
  "agent, default settings but sample duty 1" => [{}, [heapscope, "run", "--sample-duty", "1", "--", "ruby", serve]],
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
# Two views of overhead: throughput lost (what "costs 5% of throughput"
# means) and extra time per request (which adds up across tools, so it is the
# one to compare memory_profiler's cost with: a 6x slowdown is +500% time but
# only 83% of throughput).
rows = variants.keys.map do |name|
  m = median.call(rps[name])
  { "variant" => name, "median_rps" => m.round, "throughput_lost_percent" => ((1 - m / base) * 100).round(1),
    "extra_time_percent" => ((base / m - 1) * 100).round(1), "runs" => rps[name].map(&:round) }
end
lost = rows.to_h { |r| [r["variant"], r["throughput_lost_percent"]] }
extra = rows.to_h { |r| [r["variant"], r["extra_time_percent"]] }
checks = {
  "default settings cost at most 5% of throughput" => lost["agent, default settings"] <= 5.0,
  "rate 1 (full stacks) adds at most half of memory_profiler's extra time" =>
    extra["agent, sample rate 1"] <= extra["memory_profiler"] / 2.0,
  "rate 1 (1 frame, what memory_profiler records) adds at most half of its extra time" =>
    extra["agent, sample rate 1, 1 frame"] <= extra["memory_profiler"] / 2.0
}
report = { "requests_per_run" => Integer(requests), "rounds" => rounds, "variants" => rows, "targets" => checks }
File.write(File.join(out_dir, "agent-overhead.json"), JSON.pretty_generate(report))

puts format("%-44s %10s %16s %12s", "variant", "req/s", "throughput lost", "extra time")
rows.each do |r|
  puts format("%-44s %10d %15.1f%% %11.1f%%", r["variant"], r["median_rps"], r["throughput_lost_percent"],
              r["extra_time_percent"])
end
checks.each { |k, ok| puts "#{ok ? "met" : "MISSED"}: #{k}" }
require "fileutils"
FileUtils.rm_rf(work)
