# The smallest corpus program: 10 objects of a class of its own, each
# holding a 100-byte String and an Array, then one dump.
require "objspace"

class CorpusSmoke
  def initialize
    @text = "x" * 100
    @list = [1]
  end
end

$keep = Array.new(10) { CorpusSmoke.new }
GC.start
File.open("smoke.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
# json is required only after the last dump: on ruby.wasm a dump_all with
# json loaded aborts the VM.
require "json"
File.write("expect.json", JSON.generate(ruby: RUBY_VERSION, instances: { "CorpusSmoke" => 10 }))
