# Generates a large heap dump that resembles a Rails application's, for benchmarks.
#
#   usage: ruby gen_dump.rb OUT_PATH [TARGET_MB [OUT_PATH2 TARGET_MB2 ...]]
#          (TARGET_MB defaults to 1024)
#
# With more OUT_PATH/TARGET_MB pairs (increasing sizes) the same process keeps
# building and writes a dump each time the heap reaches the next size, so the
# dumps are snapshots of one process, as `heapscope diff` expects: e.g.
#   ruby gen_dump.rb a.dump 200 b.dump 240 c.dump 280
# Between snapshots a tenth of the records drop their `extra` object, so some
# objects are freed and their slots reused.
#
# With allocation tracing on, it defines a few thousand classes and modules in
# files with gem-like paths (/usr/local/bundle/gems/NAME-VERSION/lib/...) and
# app paths (/srv/app/app/...), then builds records through them: objects with
# many ivars pointing at each other, strings of varied length (short, long,
# shared substrings, non-ASCII, binary, many duplicated values), hashes and
# arrays holding references (a few of them huge, so some dump lines are MBs
# long), dynamic symbols, procs with captured environments, floats, bignums,
# ranges, structs and Time objects. It grows the heap until the dump should be
# about TARGET_MB (calibrated on two small dumps first), runs GC.start and
# writes the dump to OUT_PATH (through a temporary name and a rename).
# Deterministic for a given TARGET_MB apart from addresses.
# About 370 bytes per object (long gem paths, all objects traced): 1 GB holds
# about 2.8 million objects; generating it takes about 15 s and 0.6 GB of RAM.

require "objspace"
require "fileutils"

if ARGV.empty? || (ARGV.size > 2 && ARGV.size.odd?)
  warn "usage: ruby #{$PROGRAM_NAME} OUT_PATH [TARGET_MB [OUT_PATH2 TARGET_MB2 ...]]"
  exit 2
end
STAGES = ARGV.each_slice(2).map { |path, mb| [path, Float(mb || 1024) * 1024 * 1024] }
if STAGES.each_cons(2).any? { |(_, a), (_, b)| b <= a }
  warn "gen_dump.rb: target sizes must increase"
  exit 2
end
OUT_PATH, TARGET_BYTES = STAGES.first
T0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def log(msg)
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC) - T0
  warn format("[gen_dump %6.1fs] %s", t, msg)
end

ObjectSpace.trace_object_allocations_start
srand(42)

GEMS = %w[
  activesupport-7.1.3 activerecord-7.1.3 actionpack-7.1.3 actionview-7.1.3 activemodel-7.1.3
  railties-7.1.3 activejob-7.1.3 actionmailer-7.1.3 actioncable-7.1.3 activestorage-7.1.3
  rack-3.0.9 rack-session-2.0.0 concurrent-ruby-1.2.3 i18n-1.14.1 zeitwerk-2.6.13
  tzinfo-2.0.6 mail-2.8.1 sprockets-4.2.1 nokogiri-1.16.2 pg-1.5.5 redis-client-0.20.0
  sidekiq-7.2.2 devise-4.9.3 warden-1.2.9 kaminari-core-1.2.2 jbuilder-2.11.5 puma-6.4.2
  bootsnap-1.18.3 rails-i18n-7.0.8 faraday-2.9.0 json-2.7.1 aws-sdk-s3-1.143.0
  graphql-2.2.8 pundit-2.3.1 paper_trail-15.1.0 sentry-ruby-5.16.1
].freeze
APP_DIRS = %w[models controllers services serializers jobs policies mailers].freeze
WORDS = %w[
  account user order invoice payment line_item product variant shipment address
  session token audit event notification comment attachment tag category report
].freeze
STATUSES = %w[active pending archived deleted draft published failed queued].freeze
MIME = ["application/json", "text/html; charset=utf-8", "text/plain", "application/xml"].freeze
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod " \
         "tempor incididunt ut labore et dolore magna aliqua. ").freeze

module Bench
  Point = Struct.new(:x, :y, :label)
  IDENTITY_MAP = Hash.new { |h, k| h[k] = [] } # class => every record (big arrays)
  REGISTRY = {}                                 # name => record, one huge hash
  RECENT = []                                   # one huge array
  SYMBOLS = []
end

# ---- Code with gem-like and app-like file paths ------------------------------

def camel(word)
  word.split("_").map(&:capitalize).join
end

BASE_CODE = <<~RUBY
  module Bench
    class Record
      attr_accessor :id, :name, :attributes, :tags, :parent, :extra, :updated_at

      def initialize(id, name, attributes, tags, parent)
        @id = id
        @name = name
        @attributes = attributes
        @tags = tags
        @parent = parent
        @extra = nil
        @updated_at = nil
      end
    end

    def self.extra(i, name, rec)
      case i % 17
      when 0 then LOREM * (1 + i % 20)                           # long string
      when 1 then (LOREM * 4)[i % 50, 40 + i % 100]              # shared substring
      when 2 then "caf\u00e9 \u00fcbersicht \u2713 #\#{i}"         # non-ASCII: no "value" in the dump
      when 3 then [i, 0xff, 0xfe].pack("NCC")                     # binary
      when 4 then i * 1.0e300                                     # heap Float (not a flonum)
      when 5 then -> { rec.id + i }                               # Proc with an env
      when 6 then Hash.new { |h, k| h[k] = [] }.tap { |h| h[name] << i } # default proc
      when 7 then Time.at(1_700_000_000 + i)                      # DATA
      when 8 then Point.new(i, i * 2, name)                       # STRUCT
      when 9 then (2**70) + i                                     # BIGNUM
      when 10 then (i..(i + 10))                                  # Range
      when 11 then sym = :"dyn_\#{name}"; SYMBOLS << sym; sym     # dynamic Symbol
      when 12 then MIME[i % MIME.size].dup                        # duplicated value
      when 13 then { "etag" => "W/\\"\#{i.to_s(16)}\\"", "cache-control" => "max-age=60" }
      when 14 then Array.new(1 + i % 30) { |k| "\#{name}/\#{k}" } # array of strings
      when 15 then name.upcase.freeze
      else rec
      end
    end
  end
RUBY
eval(BASE_CODE, TOPLEVEL_BINDING, "/usr/local/bundle/gems/activemodel-7.1.3/lib/active_model/attribute_set.rb", 1)

def class_code(namespace, class_name, index)
  sym = WORDS[index % WORDS.size]
  <<~RUBY
    module #{namespace}
      class #{class_name} < ::Bench::Record
        TABLE = "#{sym}s".freeze

        def self.build(i, parent)
          name = "#{sym}-\#{i}"
          attrs = {
            "id" => i,
            "name" => name,
            "status" => ::STATUSES[i % 8].dup,
            "kind" => :#{sym},
            "position" => i % 1000,
          }
          tags = [name, attrs["status"], :#{sym}, parent]
          rec = new(i, name, attrs, tags, parent)
          rec.extra = ::Bench.extra(i, name, rec) if i % 3 == 0
          rec.updated_at = "2024-01-\#{10 + i % 20}T10:00:00Z" if i % 4 == 0
          rec
        end

        def to_param
          "\#{id}-\#{name}"
        end

        def cache_key
          [TABLE, id, updated_at].join("/")
        end

        def as_json(*)
          attributes.merge("tags" => tags.map(&:to_s))
        end
      end
    end
  RUBY
end

classes = []
GEMS.each_with_index do |gem, g|
  gem_name = gem.sub(/-[\d.]+\z/, "")
  lib = gem_name.tr("-", "_")
  top = camel(lib) + "Gen"
  8.times do |f|
    path = "/usr/local/bundle/gems/#{gem}/lib/#{lib}/#{WORDS[(g + f) % WORDS.size]}_#{f}.rb"
    code = +"module #{top}; end\n"
    names = []
    6.times do |c|
      ns = "#{top}::Mod#{f}"
      cname = "#{camel(WORDS[(g * 7 + f * 3 + c) % WORDS.size])}#{c}"
      code << "module #{ns}; end\n" if c.zero?
      code << class_code(ns, cname, g + f + c)
      names << "#{ns}::#{cname}"
    end
    eval(code, TOPLEVEL_BINDING, path, 1)
    names.each { |n| classes << Object.const_get(n) }
  end
end
APP_DIRS.each_with_index do |dir, d|
  30.times do |f|
    word = WORDS[(d + f) % WORDS.size]
    path = "/srv/app/app/#{dir}/#{word}_#{dir}_#{f}.rb"
    ns = "App#{camel(dir)}"
    code = +"module #{ns}; end\n" + class_code(ns, "#{camel(word)}#{camel(dir)}#{f}", d + f)
    eval(code, TOPLEVEL_BINDING, path, 1)
    classes << Object.const_get("#{ns}::#{camel(word)}#{camel(dir)}#{f}")
  end
end
log "defined #{classes.size} record classes"

# ---- Building records --------------------------------------------------------

DRIVER_PATH = "/usr/local/bundle/gems/activerecord-7.1.3/lib/active_record/relation/loader.rb"
eval(<<~RUBY, TOPLEVEL_BINDING, DRIVER_PATH, 1)
  module Bench
    def self.load_records(classes, from, count)
      n = classes.size
      i = from
      stop = from + count
      recent = RECENT
      while i < stop
        klass = classes[(i * 7) % n]
        parent = recent.empty? ? nil : recent[(i * 31) % recent.size]
        rec = klass.build(i, parent)
        IDENTITY_MAP[klass] << rec
        REGISTRY[rec.name] = rec if i % 10 == 0
        recent << rec if i % 4 == 0
        i += 1
      end
      i
    end
  end
RUBY

def dump_to(path)
  GC.start
  tmp = "#{path}.tmp#{Process.pid}"
  File.open(tmp, "w") { |f| ObjectSpace.dump_all(output: f) }
  File.rename(tmp, path)
  File.size(path)
end

FileUtils.mkdir_p(File.dirname(File.expand_path(OUT_PATH)))
# Calibration: dump at about 5% and 15% of the estimated record count; the
# growth between the two gives the bytes per record without the fixed costs.
calib_path = "#{OUT_PATH}.calibration#{Process.pid}"
guess = (TARGET_BYTES / 2_500).ceil # about 2,500 bytes per record
first = [guess / 20, 4_000].max # past the first record of every class
second = [guess / 7, 12_000].max
begin
  next_i = Bench.load_records(classes, 0, first)
  first_bytes = dump_to(calib_path)
  next_i = Bench.load_records(classes, next_i, second - first)
  calib_bytes = dump_to(calib_path)
ensure
  File.delete(calib_path) if File.exist?(calib_path)
end
per_record = (calib_bytes - first_bytes).to_f / (second - first)
log format("calibration: %.1f MB at %d records, %.1f MB at %d; %.0f bytes per record",
           first_bytes / 1e6, first, calib_bytes / 1e6, second, per_record)

def build_until(classes, next_i, target_bytes, current_bytes, per_record)
  remaining = ((target_bytes - current_bytes) / per_record).floor
  while remaining > 0
    n = [200_000, remaining].min
    next_i = Bench.load_records(classes, next_i, n)
    remaining -= n
    log "#{next_i} records built"
  end
  next_i
end

size = calib_bytes
STAGES.each_with_index do |(path, target), stage|
  if stage.positive?
    dropped = 0
    Bench::IDENTITY_MAP.each_value do |recs|
      recs.each do |rec|
        next unless rec.id % 10 == 3 && rec.extra

        rec.extra = nil
        dropped += 1
      end
    end
    log "dropped #{dropped} extras"
  end
  next_i = build_until(classes, next_i, target, size, per_record)
  log "GC.start and dump_all to #{path}"
  size = dump_to(path)
  log format("wrote %s: %.1f MB (target %.1f MB), %d records", path, size / 1048576.0,
             target / 1048576.0, next_i)
end
