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
# agent's end-to-end tests), derailed_benchmarks and Rails (require-mem is checked against
# `derailed bundle:mem` on `require "rails/all"`).
ensure_test_packages() {
  ensure_packages ruby:ruby deb:ruby-dev deb:libclang-dev heapy:ruby-heapy \
    protoc:protobuf-compiler \
    /usr/share/gocode/src/github.com/google/pprof/proto/profile.proto:golang-github-google-pprof-dev \
    /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
    puma:puma deb:ruby-rack sidekiq:ruby-sidekiq redis-server:redis-server \
    derailed:ruby-derailed-benchmarks deb:ruby-rails
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
