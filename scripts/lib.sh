# Shared by the scripts: installs Debian packages the project needs when missing.
# shellcheck shell=bash

# ensure_packages WHAT:PACKAGE ...  installs PACKAGE when WHAT is missing: a
# command on PATH, a file when WHAT starts with /, or the Debian package
# itself when WHAT is "deb".
ensure_packages() {
  local missing=() what
  for pair in "$@"; do
    what=${pair%%:*}
    if [[ $what == deb ]]; then
      dpkg-query -W -f='${Status}' "${pair#*:}" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("${pair#*:}")
    elif [[ $what == /* ]]; then
      [ -e "$what" ] || missing+=("${pair#*:}")
    else
      command -v "$what" >/dev/null 2>&1 || missing+=("${pair#*:}")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]}; install them with your package manager" >&2
    return 1
  fi
  echo "installing ${missing[*]} with apt-get" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (https://rustup.rs), then run this again" >&2
    return 1
  fi
}

# Everything the test suite needs: Ruby 3.1 and its headers plus libclang (the
# native agent), heapy (parity test), protoc and the pprof schema (pprof
# decoding), a TTF font (plots), and Puma, Rack, Sidekiq and Redis (the
# agent's end-to-end tests), `go tool pprof` and memory_profiler (profiles read by
# the real go tool pprof, allocated bytes checked against memory_profiler), derailed_benchmarks and Rails (require-mem is checked against
# `derailed bundle:mem` on `require "rails/all"`), Chromium and the PostgreSQL
# server (the web UI tests drive a headless browser and start their own
# server from /usr/lib/postgresql/*/bin; docs/testing.md). Chromium draws text
# with the DejaVu font above.
ensure_test_packages() {
  ensure_packages ruby:ruby deb:ruby-dev deb:libclang-dev heapy:ruby-heapy \
    protoc:protobuf-compiler go:golang-go deb:ruby-memory-profiler \
    /usr/share/gocode/src/github.com/google/pprof/proto/profile.proto:golang-github-google-pprof-dev \
    /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
    puma:puma deb:ruby-rack sidekiq:ruby-sidekiq redis-server:redis-server \
    derailed:ruby-derailed-benchmarks deb:ruby-rails \
    /usr/bin/chromium:chromium deb:postgresql
}

# cargo-fuzz and a C++ compiler (libFuzzer is C++), for the reader's fuzz
# targets in fuzz/ (docs/fuzzing.md). cargo-fuzz is installed with cargo once,
# into ~/.cargo/bin, and reused from there.
ensure_fuzz_tools() {
  ensure_packages g++:g++
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz with cargo install (once, into ~/.cargo/bin)" >&2
    cargo install --locked cargo-fuzz >&2
  fi
}

# fuzz_briefly SECONDS TARGET...: builds the fuzz targets, then runs each for
# SECONDS from its committed corpus (fuzz/corpus/TARGET), keeping new inputs
# in a scratch directory only. Fails when a target crashes, hangs or leaks
# memory; libFuzzer leaves the input in fuzz/artifacts/TARGET/ and the end of
# its log is printed. cargo-fuzz wants nightly flags: RUSTC_BOOTSTRAP=1
# allows them on a stable toolchain.
fuzz_briefly() {
  local seconds=$1 t scratch log status=0
  shift
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none) || return 1
  for t in "$@"; do
    scratch=$(mktemp -d)
    log=$(mktemp)
    if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
      grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" |
        sed "s/^/fuzz $t: /"
    else
      status=1
      echo "fuzz $t: FAILED (the input is in fuzz/artifacts/$t/); the end of its log:" >&2
      tail -n 60 "$log" >&2
    fi
    rm -rf "$scratch" "$log"
  done
  return "$status"
}

# ---------------------------------------------------------------------------
# The Ruby version matrix (docs/ruby-versions.md). Everything is cached under
# HSMATRIX_CACHE, outside the repository, and made again when missing or
# when its recipe below changes.
HSMATRIX_CACHE=${HSMATRIX_CACHE:-/var/cache/heapscope}
export HSMATRIX_CACHE

# CRuby compiled to WebAssembly, run by node: the dump format of 3.2, 3.3,
# 3.4, 4.0 and 4.1-dev (head). 32-bit builds, so not for the agent.
WASM_RUBY_PACKAGES="@ruby/wasm-wasi@2.10.1 @ruby/3.2-wasm-wasi@2.10.1 @ruby/3.3-wasm-wasi@2.10.1 @ruby/3.4-wasm-wasi@2.10.1 @ruby/4.0-wasm-wasi@2.10.1 @ruby/head-wasm-wasi@2.10.1"

ensure_wasm_rubies() {
  ensure_packages node:nodejs npm:npm
  local dir=$HSMATRIX_CACHE/wasm
  export HSMATRIX_WASM_RUBIES=$dir
  if [ "$(cat "$dir/.recipe" 2>/dev/null)" = "$WASM_RUBY_PACKAGES" ]; then
    return 0
  fi
  echo "installing the wasm Rubies into $dir (npm, once)" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{"private":true}' >"$dir/package.json"
  # shellcheck disable=SC2086 # one word per package
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error $WASM_RUBY_PACKAGES >&2)
  printf '%s' "$WASM_RUBY_PACKAGES" >"$dir/.recipe"
}

# The Debian mirror apt already uses (debootstrap needs one).
debian_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list |
    grep -v security | head -n1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//; s/[[:space:]].*//')
  echo "${uri:-http://deb.debian.org/debian}"
}

# What the agent's tests need inside a chroot, besides Ruby itself.
CHROOT_PACKAGES="ca-certificates gcc libc6-dev make libclang-dev protobuf-compiler golang-github-google-pprof-dev golang-go ruby-memory-profiler ruby-rack puma redis-server ruby-sidekiq procps passwd util-linux nodejs"

# chroot_recipe NAME: the Debian suite and Ruby of each native matrix entry.
#   trixie: Debian 13's ruby3.3 (3.3.8), the default ruby there.
#   sid:    ruby3.4 (3.4.11) from experimental, made the default `ruby`
#           (sid's own default is still 3.3). Sidekiq comes from trixie
#           (7.3, with its connection_pool 2.4): sid's 8.1 needs json >= 2.16, which Debian builds for 3.3
#           only. Puma's extension is built for 3.3 only, so the Puma test
#           skips itself on 3.4.
chroot_recipe() {
  case $1 in
  trixie) echo "suite=trixie ruby=ruby3.3 packages=ruby ruby-dev $CHROOT_PACKAGES v2" ;;
  sid) echo "suite=sid ruby=ruby3.4 experimental packages=$CHROOT_PACKAGES sidekiq,connection-pool=trixie v3" ;;
  *) return 1 ;;
  esac
}

# chroot_apt DIR ARGS...: apt-get inside the chroot. The mirror's sid and
# experimental Release files are past their validity date.
chroot_apt() {
  local dir=$1
  shift
  DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get -o Acquire::Check-Valid-Until=false \
    -o Acquire::Check-Date=false -y -qq --no-install-recommends "$@"
}

# make_chroot NAME DIR MIRROR: debootstrap, then the packages of the recipe.
make_chroot() {
  local name=$1 dir=$2 mirror=$3
  # Every step ends with || return 1: callers run this under `if`, where set -e is off.
  debootstrap --variant=minbase "$name" "$dir" "$mirror" || return 1
  cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  case $name in
  trixie)
    chroot_apt "$dir" update || return 1
    # shellcheck disable=SC2086
    chroot_apt "$dir" install ruby ruby-dev $CHROOT_PACKAGES || return 1
    ;;
  sid)
    echo "deb $mirror experimental main" >"$dir/etc/apt/sources.list.d/experimental.list" || return 1
    echo "deb $mirror trixie main" >"$dir/etc/apt/sources.list.d/trixie.list" || return 1
    chroot_apt "$dir" update || return 1
    chroot_apt "$dir" install -t experimental ruby3.4 ruby3.4-dev || return 1
    # shellcheck disable=SC2086
    chroot_apt "$dir" install $CHROOT_PACKAGES || return 1
    chroot_apt "$dir" install --allow-downgrades ruby-sidekiq/trixie ruby-connection-pool/trixie || return 1
    # Ruby 3.4 becomes the `ruby` (and gem, erb, irb, bundle) of every
    # command, shebangs included.
    local tool
    for tool in ruby gem erb irb bundle; do
      [ -e "$dir/usr/bin/${tool}3.4" ] || continue
      chroot "$dir" dpkg-divert --quiet --local --rename --add "/usr/bin/$tool" || return 1
      ln -sf "${tool}3.4" "$dir/usr/bin/$tool" || return 1
    done
    ;;
  esac
}

# ensure_chroot NAME: a Debian tree with a native Ruby for the matrix in
# $HSMATRIX_CACHE/chroot-NAME (about 3 minutes to make, then reused).
ensure_chroot() {
  local name=$1 dir=$HSMATRIX_CACHE/chroot-$1 recipe mirror
  recipe=$(chroot_recipe "$name")
  if [ "$(cat "$dir/.heapscope-recipe" 2>/dev/null)" = "$recipe" ]; then
    return 0
  fi
  ensure_packages debootstrap:debootstrap unshare:util-linux
  mirror=$(debian_mirror)
  local log=$HSMATRIX_CACHE/chroot-$name.log
  echo "making the $name chroot in $dir (debootstrap from $mirror and apt-get, a few minutes, once; log: $log)" >&2
  rm -rf "$dir"
  mkdir -p "$HSMATRIX_CACHE"
  if ! make_chroot "$name" "$dir" "$mirror" >"$log" 2>&1; then
    echo "making the $name chroot failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
  printf '%s' "$recipe" >"$dir/.heapscope-recipe"
}

# in_chroot NAME COMMAND...: runs COMMAND in the chroot, in a private mount
# namespace (the binds vanish with it), with the repository, the Rust
# toolchain and the wasm Rubies bound at the same paths as here.
in_chroot() {
  local dir=$HSMATRIX_CACHE/chroot-$1
  shift
  local repo cargo_home rustup_home
  repo=$(pwd -P)
  cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
  rustup_home=$(cd "${RUSTUP_HOME:-$HOME/.rustup}" && pwd -P)
  REPO=$repo CARGO_HOME=$cargo_home RUSTUP_HOME=$rustup_home \
    unshare --mount --propagation private -- bash -c '
    set -e
    dir=$1; shift
    for p in /proc /dev "$REPO" "$CARGO_HOME" "$RUSTUP_HOME" "$HSMATRIX_WASM_RUBIES"; do
      [ -n "$p" ] && [ -e "$p" ] || continue
      mkdir -p "$dir$p"
      mount --rbind "$p" "$dir$p"
    done
    exec chroot "$dir" env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:$CARGO_HOME/bin" \
      CARGO_HOME="$CARGO_HOME" RUSTUP_HOME="$RUSTUP_HOME" \
      HSMATRIX_WASM_RUBIES="$HSMATRIX_WASM_RUBIES" HSMATRIX_WASM_DUMPS="$HSMATRIX_WASM_DUMPS" \
      CARGO_TARGET_DIR=/var/cache/heapscope-target CARGO_TERM_COLOR=never \
      ${CARGO_INCREMENTAL:+CARGO_INCREMENTAL="$CARGO_INCREMENTAL"} \
      bash -c "cd \"\$0\" && exec \"\$@\"" "$REPO" "$@"
  ' bash "$dir" "$@"
}

# prune_chroot_target NAME: the chroot's cargo target directory is kept
# between runs, but cargo never removes what an older Cargo.lock, profile or
# toolchain built, so it grows with every such change. It is emptied when the
# build settings differ from those it was built with, and its incremental
# caches go when incremental builds are off (CI).
prune_chroot_target() {
  local target=$HSMATRIX_CACHE/chroot-$1/var/cache/heapscope-target stamp
  [ -d "$target" ] || return 0
  stamp=$( (cat Cargo.lock Cargo.toml crates/*/Cargo.toml; rustc -V) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$target/.heapscope-build-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "the $1 chroot's build cache was made with other build settings: emptying it ($(du -sh "$target" | cut -f1))" >&2
    find "$target" -mindepth 1 -maxdepth 1 ! -name CACHEDIR.TAG -exec rm -rf {} +
    printf '%s\n' "$stamp" >"$target/.heapscope-build-stamp"
  elif [ "${CARGO_INCREMENTAL:-}" = 0 ]; then
    rm -rf "$target"/debug/incremental
  fi
}

# report_disk WHEN: one line with the free space where the builds go, for the
# CI log (a full disk once failed a run halfway).
report_disk() {
  local where
  for where in . "$HSMATRIX_CACHE"; do
    [ -d "$where" ] || continue
    echo "disk $1: $(df -h --output=avail "$where" | tail -n 1 | tr -d ' ') free at $(cd "$where" && pwd -P)" >&2
  done
}
