# Heap dumps whose strings carry HTML and JavaScript attacks in every place
# a dump string can appear, for the web UI's escaping tests.
#
#   ruby hostile_web.rb DIR [DUMPS=3]
#
# Writes DUMPS dumps DIR/heap-<pid>-<time>-<seq>.dump (one process's series,
# the agent's naming, fake times 1700000000 + 60 * seq, mtimes set). Each
# round, before its dump, allocates more objects held by $holder (an Array
# in a global), so the hostile sites are also a growing leak. The places:
#
#   values   String values: the payloads themselves (several equal copies,
#            so they are duplicated strings too) and numbered variants.
#   files    allocation files: code `eval`ed under hostile file names, one
#            of them inside a gems/ directory whose gem name is hostile.
#   methods  allocating methods: `define_method` with hostile names, called
#            from that code (so file and method of the same objects).
#   classes  class names. Ruby code cannot name a class like this on 3.1
#            (const_set wants a constant name; set_temporary_name is 3.3+),
#            but the C API can: rb_define_class through Fiddle makes real
#            classes, whose instances are allocated at the hostile sites
#            (three for OBJECTs, three more for the DATA objects below).
#   structs  DATA struct names (rb_data_type_t.wrap_struct_name, which Ruby
#            3.1 writes unescaped): rb_data_typed_object_wrap through Fiddle
#            with a type whose name is the payload (no mark or free function,
#            no data: nothing for the GC to call).
#   symbols  dynamic Symbols (SYMBOL records with a value), as Hash keys.
#
# Each payload names its place in its alert() argument, so a dialog that
# fires in a test says which place was not escaped: alert(1) values,
# alert(2) files, alert(3) methods, alert(4) classes, alert(5) structs,
# alert(6) symbols, alert(7) the gem name.
#
# Prints a JSON object: dumps (file names in DIR, in order), pid, and the
# planted "values", "files", "methods", "classes", "structs", "symbols",
# "gem" (name and file), and "sites": for each hostile file its method and
# the lines of what it allocates ({"file", "method", "lines": {KIND: LINE}}),
# with "per_round" (objects of each kind per round at each site).
require "objspace"
require "json"
require "fiddle"

ObjectSpace.trace_object_allocations_start

unless (1..2).cover?(ARGV.size)
  warn "usage: ruby #{$PROGRAM_NAME} DIR [DUMPS=3]"
  exit 2
end
DIR = ARGV[0]
DUMPS = Integer(ARGV[1] || "3", 10)
BASE_TIME = 1_700_000_000

def payloads(n)
  ["<script>alert(#{n})</script>", "\"><img src=x onerror=alert(#{n})>", "javascript:alert(#{n})"]
end

VALUES = payloads(1).freeze
GEM_NAME = "\"><img src=x onerror=alert(7)>"
FILES = [
  "<script>alert(2)</script>.rb",
  "\"onerror=alert(2) x=\".rb",
  "javascript:alert(2)",
  "/srv/app/vendor/bundle/ruby/3.1.0/gems/#{GEM_NAME}-1.0.0/lib/evil.rb",
].freeze
METHODS = (payloads(3) + ["gem_work"]).freeze
# Instances (OBJECT) of the first three, DATA objects of the last three:
# wrapping a DATA undefines its class's allocator.
CLASS_NAMES = (payloads(4) + payloads(4).map { |p| "#{p} data" }).freeze
STRUCT_NAMES = payloads(5).freeze
SYMBOLS = payloads(6).freeze
PER_ROUND = 20

# --- classes and DATA types through the C API -------------------------------
LIBRUBY = Fiddle::Handle::DEFAULT
DEFINE_CLASS = Fiddle::Function.new(LIBRUBY["rb_define_class"],
                                    [Fiddle::TYPE_VOIDP, Fiddle::TYPE_UINTPTR_T], Fiddle::TYPE_UINTPTR_T)
WRAP = Fiddle::Function.new(LIBRUBY["rb_data_typed_object_wrap"],
                            [Fiddle::TYPE_UINTPTR_T, Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP], Fiddle::TYPE_UINTPTR_T)

CLASSES = CLASS_NAMES.map { |name| Fiddle.dlunwrap(DEFINE_CLASS.call(name, Fiddle.dlwrap(Object))) }.freeze
CLASSES.zip(CLASS_NAMES) { |c, name| raise "#{c.name.inspect} != #{name.inspect}" unless c.name == name }

# rb_data_type_t: name, {dmark, dfree, dsize, dcompact, reserved}, parent,
# data, flags: 9 words, all zero but the name. Never freed (the objects
# keep pointing at it).
DATA_TYPES = STRUCT_NAMES.map do |name|
  cname = Fiddle::Pointer.malloc(name.bytesize + 1, nil)
  cname[0, name.bytesize + 1] = "#{name}\0"
  words = 9
  type = Fiddle::Pointer.malloc(Fiddle::SIZEOF_VOIDP * words, nil)
  type[0, Fiddle::SIZEOF_VOIDP * words] = [cname.to_i].pack("J") + ("\0" * (Fiddle::SIZEOF_VOIDP * (words - 1)))
  [type, cname]
end.freeze

# --- the allocating code, under hostile file and method names --------------
# Line numbers inside the eval'd text (it starts at line 1).
LINES = { "value" => 3, "copy" => 4, "object" => 6, "data" => 7, "symbol_hash" => 8 }.freeze
TEMPLATE = <<~'RUBY'
  Object.define_method(METHODS[I]) do |list, round|
    PER_ROUND.times do |k|
      list << "#{VALUES[I % 3]} #{round}-#{k}"
      list << VALUES[I % 3].dup
    end
    list << CLASSES[I % 3].new
    list << Fiddle.dlunwrap(WRAP.call(Fiddle.dlwrap(CLASSES[3 + I % 3]), nil, DATA_TYPES[I % 3][0]))
    list << { SYMBOLS[I % 3].to_sym => round, "#{SYMBOLS[I % 3]} #{round}".to_sym => VALUES[I % 3].dup }
    nil
  end
RUBY
FILES.each_with_index { |file, i| eval(TEMPLATE.gsub("I", i.to_s), binding, file, 1) }
raise "the template's lines moved" unless TEMPLATE.lines[LINES["object"] - 1].include?(".new")

$holder = []
def round(r)
  METHODS.each { |m| send(m, $holder, r) }
end

names = []
DUMPS.times do |seq|
  round(seq)
  GC.start
  time = BASE_TIME + 60 * seq
  name = "heap-#{Process.pid}-#{time}-#{seq}.dump"
  path = File.join(DIR, name)
  File.open("#{path}.tmp", "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename("#{path}.tmp", path)
  File.utime(time, time, path)
  names << name
end

puts JSON.generate(
  "dumps" => names, "pid" => Process.pid,
  "values" => VALUES, "files" => FILES, "methods" => METHODS,
  "classes" => CLASS_NAMES, "structs" => STRUCT_NAMES, "symbols" => SYMBOLS,
  "gem" => { "name" => GEM_NAME, "file" => FILES[3] },
  "sites" => FILES.each_with_index.map { |f, i| { "file" => f, "method" => METHODS[i], "lines" => LINES } },
  "per_round" => { "value" => PER_ROUND, "copy" => PER_ROUND, "object" => 1, "data" => 1, "symbol_hash" => 1 },
)
