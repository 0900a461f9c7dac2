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
