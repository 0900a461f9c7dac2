# ObjectSpace::WeakKeyMap (3.3+) holds its values strongly while their key
# lives; ObjectSpace::WeakMap holds nothing. 20 keys stay alive in $keys,
# each mapped to a GraphWkmValue (an object with a 200-byte String) that
# nothing else references; a WeakMap maps other live keys to GraphWmValue
# objects held by nothing else (the GC frees those). Ruby 3.2 has no
# WeakKeyMap: it writes only the WeakMap part.
require "objspace"

class GraphWkmKey; end
class GraphWkmValue
  def initialize
    @payload = "v" * 200
  end
end
class GraphWmValue; end

$keys = Array.new(20) { GraphWkmKey.new }
has_wkm = ObjectSpace.const_defined?(:WeakKeyMap)
if has_wkm
  $wkm = ObjectSpace::WeakKeyMap.new
  $keys.each { |k| $wkm[k] = GraphWkmValue.new }
end
$wm_keys = Array.new(20) { GraphWkmKey.new }
$wm = ObjectSpace::WeakMap.new
$wm_keys.each { |k| $wm[k] = GraphWmValue.new }
GC.start
File.open("weakkeymap.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
address = ->(o) { ObjectSpace.dump(o)[/"address":"(0x\h+)"/, 1] }
wkm_address = has_wkm ? address.($wkm) : nil
value_addresses = has_wkm ? $keys.map { |k| address.($wkm[k]) } : []
wm_address = address.($wm)
require "json"
File.write("expect.json", JSON.generate(
  ruby: RUBY_VERSION,
  weak_key_map: has_wkm,
  wkm_address: wkm_address,
  wm_address: wm_address,
  value_addresses: value_addresses,
))
