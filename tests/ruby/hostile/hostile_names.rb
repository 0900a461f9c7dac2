# Objects whose method name, file name and class name carry terminal escape
# sequences (a window-title OSC, a screen clear) and NUL bytes.
#
#   ruby hostile_names.rb DIR DUMPS
#
# Writes DIR/hostile-1.dump ... DIR/hostile-DUMPS.dump. Before each dump,
# 300 strings of 1 KB are allocated in a method whose name is hostile and
# 300 more in code whose file name is hostile (eval's file argument), all
# held by one Holder: a leak whose path, suspect and sites all show the
# names. Prints the addresses of the holder and of one string of each site,
# as JSON.
#
# Ruby 3.1 cannot give a class such a name (const_set wants a constant name;
# Module#set_temporary_name, which takes any text, came in 3.3), so the
# Holder class's record is renamed in the dump, as a 3.3 program's would
# read.
require "objspace"
require "json"

EVIL = "\e]0;PWNED\a\e[2J"
METHOD = :"grow#{EVIL}\0nul"
FILE_NAME = "#{EVIL}evil.rb"
CLASS_NAME = "Holder#{EVIL}\0Class"

class HostileHolder
  def initialize
    @items = []
  end
  attr_reader :items
end

ObjectSpace.trace_object_allocations_start

Object.define_method(METHOD) do |list, round|
  300.times { |i| list << "#{"m" * 1000} #{round} #{i}" }
  nil
end
FROM_FILE = eval(<<~RUBY, binding, FILE_NAME, 1)
  ->(list, round) { 300.times { |i| list << "\#{"f" * 1000} \#{round} \#{i}" }; nil }
RUBY

# Not JSON.parse: Ruby 3.1 writes file names unescaped, control bytes and all.
def address_of(obj)
  ObjectSpace.dump(obj)[/"address":"(0x\h+)"/, 1]
end

def setup
  $holder = HostileHolder.new
  address_of($holder)
end

def grow(round)
  send(METHOD, $holder.items, round)
  FROM_FILE.call($holder.items, round)
  {"method_string" => address_of($holder.items[-600]), "file_string" => address_of($holder.items[-1])}
end

dir = ARGV.fetch(0)
out = {"holder" => setup}
paths = Array.new(Integer(ARGV.fetch(1))) do |round|
  out.update(grow(round))
  GC.start
  path = File.join(dir, "hostile-#{round + 1}.dump")
  File.open(path, "w") { |f| ObjectSpace.dump_all(output: f) }
  path
end
# Renamed once all are written, so that no copy of a dump is in a dump.
paths.each do |path|
  text = File.binread(path)
  renamed = text.gsub('"name":"HostileHolder"', "\"name\":#{JSON.generate(CLASS_NAME)}")
  raise "no HostileHolder record in #{path}" if renamed == text
  File.binwrite(path, renamed)
end
puts JSON.generate(out)
