# An object held by a constant, another by a global, a third by an ivar of
# a constant's object: each is reached from a precise root. Ruby 3.4+ dumps
# no "finalizers" root and do not list Object under ROOT vm. An object with
# a finalizer makes older Rubies write a "finalizers" root; 20 Strings made
# after the last GC are garbage at the time of the dump.
require "objspace"

class GraphRootsHolder
  def initialize
    @held = Array.new(3) { GraphRootsByIvar.new }
  end
end
class GraphRootsByIvar; end
class GraphRootsByConst; end
class GraphRootsByGlobal; end
class GraphRootsFinalized; end
GRAPH_ROOTS_CONST = [GraphRootsByConst.new]
GRAPH_ROOTS_HOLDER = GraphRootsHolder.new
$graph_roots_global = GraphRootsByGlobal.new
$graph_roots_finalized = GraphRootsFinalized.new
ObjectSpace.define_finalizer($graph_roots_finalized, proc { })
address = ->(o) { ObjectSpace.dump(o)[/"address":"(0x\h+)"/, 1] }
GC.start
garbage = Array.new(20) { address.(String.new("g" * 64)) }
File.open("roots.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
require "json"
File.write("expect.json", JSON.generate(ruby: RUBY_VERSION, garbage: garbage))
