# dump_all(full: true) writes free slots as "type":"NONE" records. 300
# GraphFullThing objects are made and dropped, so the heap has free slots;
# 10 more stay alive.
require "objspace"

class GraphFullThing; end
Array.new(300) { GraphFullThing.new }
$keep = Array.new(10) { GraphFullThing.new }
GC.start
File.open("full.dump", "w") { |f| ObjectSpace.dump_all(output: f, full: true) }
require "json"
File.write("expect.json", JSON.generate(ruby: RUBY_VERSION, kept: 10))
