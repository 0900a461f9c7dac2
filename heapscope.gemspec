# frozen_string_literal: true

# The heapscope agent as a gem, built from source with cargo at install time:
#   gem build heapscope.gemspec && gem install ./heapscope-0.1.0.gem
# Then `require "heapscope"; Heapscope.start` in an app, or run it under
# `heapscope run -- CMD`. The analyser (`heapscope` binary) is installed with
# scripts/install or `cargo install --path crates/cli`.
Gem::Specification.new do |spec|
  spec.name = "heapscope"
  spec.version = File.read(File.join(__dir__, "Cargo.toml"))[/^version = "([^"]+)"/, 1]
  spec.summary = "In-process agent for heapscope: heap dumps on demand, a sampling heap profiler (pprof), GC statistics"
  spec.description = "Native (Rust) agent that lets heapscope take heap dumps from a running Ruby " \
                     "process, profile allocations into pprof files, and record memory and GC " \
                     "statistics over time, without changing the app."
  spec.authors = ["heapscope developers"]
  spec.licenses = ["MIT", "Apache-2.0"]
  spec.required_ruby_version = ">= 3.1"
  spec.require_paths = ["ruby/lib"]
  spec.extensions = ["ruby/ext/heapscope/extconf.rb"]
  # The whole Cargo workspace is needed to build the extension (cargo reads
  # every member's manifest), but not tests, benchmarks or data.
  spec.files = Dir.chdir(__dir__) do
    Dir["ruby/lib/**/*.rb", "ruby/ext/**/*.rb", "Cargo.toml", "Cargo.lock", "README.md",
        "crates/*/Cargo.toml", "crates/*/build.rs", "crates/*/src/**/*.rs"]
  end
end
