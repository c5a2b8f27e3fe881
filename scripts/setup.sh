#!/usr/bin/env bash
# Installs the Debian packages aec needs (idempotent), builds a release, installs `aec` and
# libaec under PREFIX (default /usr/local as root, ~/.local otherwise), and runs a demo.
#
#   scripts/setup.sh            # install packages, build, install, demo
#   PREFIX=/opt/aec scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

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

scripts/install-packages.sh   # Debian packages (scripts/packages.txt)
scripts/install-test-deps.sh  # npm packages of the tests (tests/dashboard, tests/dynalite)
build_and_install
demo
