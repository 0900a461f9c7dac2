# frozen_string_literal: true

# The Rack app the overhead benchmark serves: each request does what a small
# JSON endpoint does (parse params, build records, render), so it allocates
# a few hundred objects of mixed types, like real request handling.
require "json"
require "rack"

module BenchApp
  Record = Struct.new(:id, :name, :tags, :meta)

  def self.call(env)
    req = Rack::Request.new(env)
    n = (req.params["n"] || "20").to_i
    records = Array.new(n) do |i|
      Record.new(i, "user-#{i}-#{req.path_info}", %w[a b c].map { |t| "#{t}#{i}" }, { "score" => i * 1.5, "ok" => i.even? })
    end
    body = JSON.generate(records.map(&:to_h))
    [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
  end
end
