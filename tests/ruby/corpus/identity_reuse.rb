# Object identity across dumps (issue 11): four untraced dumps of one
# process, named with unix times so that `leaks` orders them.
#
# Dump 1: N IdentityOld objects whose object_id was called (Ruby 4.0+ writes
# it in their flags) and N IdentityKept objects without one. Then the
# IdentityOld objects die and M IdentityNew objects fill free slots, some of
# them at the addresses the IdentityOld objects had (enough that every free
# slot is taken); the IdentityKept objects get an object_id. Dumps 3 and 4:
# N more IdentityNew objects each time.
#
# Known by construction: between dumps 1 and 2, M IdentityNew objects are new
# and no IdentityKept object is; in `leaks`, the IdentityNew site grows every
# dump and has M survivors (the first batch).
require "objspace"

class IdentityOld; end
class IdentityNew; end
class IdentityKept; end

N = 100
M = 4000

def dump(name)
  GC.start
  File.open(name, "w") { |f| ObjectSpace.dump_all(output: f) }
end

# The objects live in global arrays that stay alive, filled and emptied in
# methods: ruby.wasm scans its stack conservatively, and a stale pointer to a
# dropped Array there would keep all its elements alive.
$kept = []
$old = []
$new = []

def make_old
  N.times { $kept << IdentityKept.new }
  N.times { $old << IdentityOld.new }
  $old.each(&:object_id)
  nil
end

def drop_old
  $old.clear
  3.times { GC.start }
  nil
end

def make_new(count)
  count.times { $new << IdentityNew.new }
  nil
end

make_old
dump "heap-1700000000.dump"
drop_old
make_new(M)
$kept.each(&:object_id)
dump "heap-1700000060.dump"
make_new(N)
dump "heap-1700000120.dump"
make_new(N)
dump "heap-1700000180.dump"
# json is required only after the last dump: on ruby.wasm a dump_all with
# json loaded aborts the VM.
require "json"
File.write("expect.json", JSON.generate(ruby: RUBY_VERSION, n: N, m: M))
