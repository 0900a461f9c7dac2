# Objects whose instance variables the analyser must name (issue 11):
# a plain object, a wide one (ivars outside the slot), a too-complex one,
# generic ivars on a String and an Array, class-level ivars, a WeakMap, an
# object whose object_id was asked for.
# Writes names.dump (with shapes) and, from 3.2, noshapes.dump (shapes: false), and
# expect.json with the addresses of what it built.
require "objspace"

class NamesHolder
  def initialize
    @alpha = String.new("alpha-value")
    @beta = String.new("beta-value")
  end
end

class NamesWide
end

class NamesComplex
end

class NamesRegistry
  @registry = [String.new("registry-item")]
  @label = String.new("registry-label")
end

def addr(o)
  ObjectSpace.dump(o)[/"address":"(0x\h+)"/, 1]
end

$names_holder = NamesHolder.new

# Many ivars added one by one to the first instance: they outgrow the slot.
$names_wide = NamesWide.new
30.times { |i| $names_wide.instance_variable_set(:"@w#{i}", String.new("wide-#{i}")) }

# More than SHAPE_MAX_VARIATIONS orders of ivars: the class goes too complex.
$names_complex = Array.new(12) do |i|
  o = NamesComplex.new
  o.instance_variable_set(:"@first#{i}", String.new("complex-first-#{i}"))
  o.instance_variable_set(:@shared, String.new("complex-shared-#{i}"))
  o
end

$names_string = String.new("carrier string")
$names_string.instance_variable_set(:@tag, String.new("string-tag-value"))
$names_array = [String.new("element-0"), String.new("element-1")]
$names_array.instance_variable_set(:@note, String.new("array-note-value"))

# 4.0 writes an object's object_id, once asked for, among its flags.
$names_identified = NamesHolder.new
names_identified_id = $names_identified.object_id

$names_weak_key = String.new("weak-key")
$names_weak_value = String.new("weak-value")
$names_weakmap = ObjectSpace::WeakMap.new
$names_weakmap[$names_weak_key] = $names_weak_value

expect = {
  holder: addr($names_holder),
  alpha: addr($names_holder.instance_variable_get(:@alpha)),
  beta: addr($names_holder.instance_variable_get(:@beta)),
  wide: addr($names_wide),
  wide_w20: addr($names_wide.instance_variable_get(:@w20)),
  complex: addr($names_complex.last),
  complex_shared: addr($names_complex.last.instance_variable_get(:@shared)),
  string: addr($names_string),
  string_tag: addr($names_string.instance_variable_get(:@tag)),
  array: addr($names_array),
  array_note: addr($names_array.instance_variable_get(:@note)),
  registry_class: addr(NamesRegistry),
  registry: addr(NamesRegistry.instance_variable_get(:@registry)),
  registry_label: addr(NamesRegistry.instance_variable_get(:@label)),
  weakmap: addr($names_weakmap),
  weak_value: addr($names_weak_value),
  identified: addr($names_identified),
  identified_id: names_identified_id,
}

GC.start
File.open("names.dump", "w") { |f| ObjectSpace.dump_all(output: f) }
begin
  File.open("noshapes.dump", "w") { |f| ObjectSpace.dump_all(output: f, shapes: false) }
rescue ArgumentError # no shapes: keyword before Ruby 3.2
  File.delete("noshapes.dump")
end
# json only after the last dump (ruby.wasm aborts a dump_all with json loaded).
require "json"
File.write("expect.json", JSON.generate(expect.merge(ruby: RUBY_VERSION)))
