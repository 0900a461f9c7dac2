# Shared by the scripts: installs Debian packages the project needs when missing.
# shellcheck shell=bash

# ensure_packages WHAT:PACKAGE ...  installs PACKAGE when WHAT is missing: a
# command on PATH, or a file when WHAT starts with /.
ensure_packages() {
  local missing=() what
  for pair in "$@"; do
    what=${pair%%:*}
    if [[ $what == /* ]]; then
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
