# Used by crates/cli/tests/pprof_go.rs: a heap dump whose allocation sites
# carry method names that pprof's C++ name simplifier used to rewrite
# (<main>, <class:X>, block (2 levels) in <main>, <=>, []), plus allocations
# in C methods (String#*, Array.new, Hash#merge), which a dump attributes to
# the calling Ruby line. ARGV: the dump file to write.
require "objspace"

KEEP = []

class Maker
  NAMES = ["<main>", "<top (required)>", "<class:Foo>", "block (2 levels) in <main>",
           "Foo#bar", "Foo.baz", "<=>", "[]"].freeze

  NAMES.each_with_index do |name, i|
    define_method(name) do |n|
      n.times { |k| KEEP << "#{name} #{k} #{i}" } # @named
    end
  end
end

ObjectSpace.trace_object_allocations_start
maker = Maker.new
Maker::NAMES.each { |name| maker.public_send(name, 20 + name.size) }
50.times { KEEP << ("c" * 2000) } # @string_times
50.times { KEEP << Array.new(100, 0) } # @array_new
50.times { KEEP << { a: 1 }.merge(b: 2) } # @hash_merge
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
