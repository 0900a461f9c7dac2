#!/usr/bin/env bash
# Benchmarks the store and the web UI (issue 14's figures) on the 1 GB bench
# dump, in one run:
#   1. `heapscope import` (no --objects) against `heapscope summary` on the
#      same file (hyperfine, fresh store each run): the difference and ratio;
#   2. `import --objects` into SQLite and into PostgreSQL (a private server
#      started here, Debian's postgresql): objects per second, of the whole
#      import and of its object-writing stage (HEAPSCOPE_TIMINGS);
#   3. a store of 20 such dumps (the imported dump's rows copied 19 times in
#      SQL, so no 20 GB of files are needed), served by `heapscope serve`:
#      server time of every store-only page (curl, best of 5), and the first
#      object page and dominator expansion of the dump (they read the file)
#      against `heapscope retained` on it.
#
#   bench/store.sh
#
# Environment:
#   BENCH_FILE=PATH     the dump (default bench/data/bench-1g.dump, generated)
#   HEAPSCOPE_BIN=PATH  use this binary and skip `cargo build`
#   RUNS=3              hyperfine runs
#
# Writes bench/results/store.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS" "$ROOT/bench/data"
RUNS=${RUNS:-3}
die() { echo "bench/store.sh: $*" >&2; exit 1; }
command -v hyperfine >/dev/null || die "hyperfine is not installed"
command -v curl >/dev/null || die "curl is not installed"

if [[ -n ${HEAPSCOPE_BIN:-} ]]; then
  HS=$HEAPSCOPE_BIN
else
  cargo build --release --locked -p heapscope >&2
  HS="${CARGO_TARGET_DIR:-$ROOT/target}/release/heapscope"
fi
FILE=${BENCH_FILE:-$ROOT/bench/data/bench-1g.dump}
if [[ ! -f $FILE ]]; then
  echo "== generating $FILE (1 GB)" >&2
  ruby bench/gen_dump.rb "$FILE" 1024 >&2
fi
WORK=$(mktemp -d /tmp/heapscope-store-bench.XXXXXX)
chmod 755 "$WORK"
PGPID=""
SERVE=""
cleanup() {
  [[ -n $SERVE ]] && kill "$SERVE" 2>/dev/null || true
  if [[ -n $PGPID ]]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
out="$RESULTS/store.md"
{
  echo "# Store and web UI benchmark"
  echo
  echo "$(date -u +%F), $(nproc) cores, $FILE ($(du -h "$FILE" | cut -f1))"
  echo
} >"$out"

# 1. import against summary.
echo "== import (no --objects) against summary" >&2
hyperfine -N --warmup 1 --runs "$RUNS" \
  --prepare "rm -f $WORK/s.sqlite $WORK/s.sqlite-wal $WORK/s.sqlite-shm" \
  --export-json "$WORK/import.json" \
  "$HS summary $FILE" "$HS import -q $FILE --store $WORK/s.sqlite" >&2
python3 - "$WORK/import.json" >>"$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
s, i = r[0]["mean"], r[1]["mean"]
print("| command | mean | |\n|---|---|---|")
print(f"| summary | {s:.2f} s | |")
print(f"| import (no --objects) | {i:.2f} s | +{i - s:.2f} s, {i / s:.2f}x |\n")
EOF

objects_rate() { # LABEL STORE
  local log="$WORK/objects-$1.log"
  local t0 t1
  t0=$(date +%s.%N)
  HEAPSCOPE_TIMINGS=1 "$HS" import "$FILE" --objects --store "$2" >"$log" 2>&1
  t1=$(date +%s.%N)
  python3 - "$1" "$log" "$t0" "$t1" >>"$out" <<'EOF'
import re, sys
label, log, t0, t1 = sys.argv[1], open(sys.argv[2]).read(), float(sys.argv[3]), float(sys.argv[4])
objects = int(re.search(r"dump: ([\d,]+) objects", log).group(1).replace(",", ""))
laps = dict((m.group(1), float(m.group(2))) for m in re.finditer(r"timing: (.+?) done at ([\d.]+) s", log))
stage = laps["objects written"] - laps["flame graph"]
total = t1 - t0
print(f"| {label} | {objects:,} | {total:.1f} s | {objects / total:,.0f}/s | {stage:.1f} s | {objects / stage:,.0f}/s |")
EOF
}
echo "== import --objects" >&2
{
  echo "| --objects into | objects | whole import | objects/s | object stage | objects/s |"
  echo "|---|---|---|---|---|---|"
} >>"$out"
objects_rate SQLite "$WORK/o.sqlite"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -n $PGBIN && -x $PGBIN/initdb ]] && id postgres >/dev/null 2>&1; then
  mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -A trust >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" \
    -o "-p $port -k $WORK/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
  PGPID=1
  runuser -u postgres -- "$PGBIN/psql" -q -h 127.0.0.1 -p "$port" -c 'CREATE DATABASE hs' postgres
  objects_rate PostgreSQL "postgres://postgres@127.0.0.1:$port/hs"
else
  echo "| PostgreSQL | (postgresql not installed: skipped) | | | | |" >>"$out"
fi
echo >>"$out"

# 3. A store of 20 dumps: the first import's rows, copied.
echo "== a store of 20 dumps, pages timed" >&2
python3 - "$WORK/s.sqlite" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
(d,) = c.execute("SELECT id FROM dumps").fetchone()
cols = [r[1] for r in c.execute("PRAGMA table_info(dumps)") if r[1] != "id"]
for i in range(1, 20):
    sel = ", ".join("fingerprint || '-copy%d'" % i if k == "fingerprint" else ("taken_at + %d" % (i * 600) if k == "taken_at" else k) for k in cols)
    cur = c.execute(f"INSERT INTO dumps ({', '.join(cols)}) SELECT {sel} FROM dumps WHERE id = ?", (d,))
    n = cur.lastrowid
    c.execute("INSERT INTO dump_rows SELECT ?, dim, key, count, bytes, extra FROM dump_rows WHERE dump_id = ?", (n, d))
    c.execute("INSERT INTO dump_docs SELECT ?, kind, body FROM dump_docs WHERE dump_id = ?", (n, d))
c.execute("UPDATE processes SET dumps = 20")
c.commit()
EOF
"$HS" serve --store "$WORK/s.sqlite" --listen 127.0.0.1:0 >"$WORK/url" 2>"$WORK/serve.log" &
SERVE=$!
for _ in $(seq 100); do [[ -s $WORK/url ]] && break; sleep 0.1; done
URL=$(head -1 "$WORK/url")
URL=${URL%/}
best() { # PATH -> best server time of 5 (time to first byte), ms
  local b=999999 t
  for _ in 1 2 3 4 5; do
    t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$URL$1")
    b=$(python3 -c "print(min($b, $t * 1000))")
  done
  printf '%.1f' "$b"
}
{
  echo "| page (store of 20 dumps) | server time, best of 5 |"
  echo "|---|---|"
  for p in / /process/1 "/dump/20?tab=type" "/dump/20?tab=class" "/dump/20?tab=location" \
    "/dump/20?tab=location&q=gen_dump&sort=count&page=2" "/dump/20?tab=file" "/dump/20?tab=gem" \
    "/dump/20?tab=generation" "/dump/20?tab=string" "/dump/20?tab=retained" \
    "/dump/20?tab=suspects" "/dump/20?tab=dominators" /dump/20/flame.svg; do
    echo "| \`$p\` | $(best "$p") ms |"
  done
} >>"$out"
addr=$(python3 - "$WORK/s.sqlite" <<'EOF'
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
doc = json.loads(c.execute("SELECT body FROM dump_docs WHERE dump_id = 1 AND kind = 'retained'").fetchone()[0])
print(doc["rows"][0]["address"])
EOF
)
first=$(curl -s -o /dev/null -w '%{time_total}' "$URL/dump/1/object/$addr")
again=$(best "/dump/1/object/$addr")
expand=$(best "/dump/1/dominators?node=$addr")
hyperfine -N --runs "$RUNS" --export-json "$WORK/retained.json" "$HS retained $FILE" >&2
retained=$(python3 -c "import json; print(json.load(open('$WORK/retained.json'))['results'][0]['mean'])")
{
  printf '| first object page (reads the dump) | %.2f s (`retained`: %.2f s) |\n' "$first" "$retained"
  echo "| the same object page again | $again ms |"
  echo "| dominator explorer, one expansion | $expand ms |"
} >>"$out"
cat "$out"
