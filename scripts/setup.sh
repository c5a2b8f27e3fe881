#!/usr/bin/env bash
# Installs the Debian packages aec needs (idempotent), builds a release, installs `aec` and
# libaec under PREFIX (default /usr/local as root, ~/.local otherwise), and runs a demo.
#
#   scripts/setup.sh            # install packages, build, install, demo
#   PREFIX=/opt/aec scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

install_packages() {
  local wanted missing=()
  wanted=$(grep -v '^\s*#' scripts/packages.txt | grep -v '^\s*$')
  for p in $wanted; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages: all present"
    return
  fi
  say "Installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: run as root or install sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

build_and_install() {
  local prefix=${PREFIX:-}
  if [ -z "$prefix" ]; then
    if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix=$HOME/.local; fi
  fi
  say "Building (release preset)"
  cmake --preset release -DAEC_BUILD_TESTS=OFF -DAEC_BUILD_BENCH=ON >/dev/null
  cmake --build --preset release
  say "Installing into $prefix"
  cmake --install build/release --prefix "$prefix" >/dev/null
  AEC="$prefix/bin/aec"
  "$AEC" --version
  case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: add $prefix/bin to your PATH to run 'aec' by name" ;;
  esac
}

demo() {
  say "Demo: aec run --key demo/hello on the embedded default store"
  "$AEC" run --key demo/hello -- sh -c 'echo "hello from $AEC_KEY: execution $AEC_EXECUTION_ID, fencing token $AEC_FENCING_TOKEN"'
  "$AEC" history demo/hello --limit 3
}

install_packages
scripts/install-test-deps.sh  # npm packages of the tests (tests/dashboard, tests/dynalite)
build_and_install
demo
