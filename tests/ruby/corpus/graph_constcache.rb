# A method's inline constant cache keeps the cached value alive. Ruby 3.1
# and earlier dump that value as the constcache IMEMO's "class" and leave it
# out of "references". REMOVED (an Array of 200 Strings) is removed with
# remove_const after the cache was filled, so only the cache holds it; KEPT
# (a Hash of 200 Strings) stays a constant and is cached too, so the class
# does not dominate it.
require "objspace"

class GraphCcHolder
  REMOVED = Array.new(200) { |i| "r" * 100 + i.to_s }
  KEPT = (0...200).to_h { |i| [i, "k" * 100 + i.to_s] }
  def self.removed
    REMOVED
  end
  def self.kept
    KEPT
  end
end
address = ->(o) { ObjectSpace.dump(o)[/"address":"(0x\h+)"/, 1] }
removed_address = address.(GraphCcHolder.removed)
kept_address = address.(GraphCcHolder.kept)
class_address = address.(GraphCcHolder)
GraphCcHolder.send(:remove_const, :REMOVED)
GC.start
File.open("constcache.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
require "json"
File.write("expect.json", JSON.generate(
  ruby: RUBY_VERSION,
  removed: removed_address,
  kept: kept_address,
  class: class_address,
))
