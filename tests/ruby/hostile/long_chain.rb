# A linked list of N nodes held from a global, with a payload array at its
# far end: the only path from a root to the payload (and to each string in
# it) runs through all N nodes.
#
#   ruby long_chain.rb DIR N [DUMPS]
#
# Writes DIR/chain-1.dump ... DIR/chain-DUMPS.dump (1 by default), adding
# 1,000 strings to the payload before each dump, so that the payload's
# strings are a leaking site whose paths are N + 2 objects long. Prints the
# addresses of the first node, the last node and the payload, as JSON.
require "objspace"
require "json"

class ChainNode
  def initialize(succ)
    @succ = succ
  end
end

def address_of(obj)
  JSON.parse(ObjectSpace.dump(obj))["address"]
end

# Built in methods so that no local variable of the main script holds a
# node or the payload: the global is the only way in.
def build(n)
  payload = []
  tail = ChainNode.new(payload)
  node = tail
  (n - 1).times { node = ChainNode.new(node) }
  $chain = node
  {"head" => address_of(node), "tail" => address_of(tail), "payload" => address_of(payload)}
end

def payload
  node = $chain
  node = node.instance_variable_get(:@succ) while node.is_a?(ChainNode)
  node
end

def grow(round)
  list = payload
  1_000.times { |i| list << "payload #{round} #{i}" }
  nil
end

dir = ARGV.fetch(0)
addresses = build(Integer(ARGV.fetch(1)))
Integer(ARGV.fetch(2, "1")).times do |round|
  grow(round)
  GC.start
  File.open(File.join(dir, "chain-#{round + 1}.dump"), "w") { |f| ObjectSpace.dump_all(output: f) }
end
puts JSON.generate(addresses)
