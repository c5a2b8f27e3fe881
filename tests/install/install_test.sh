#!/usr/bin/env bash
# Installs aec from BUILD_DIR into a temporary prefix, builds tests/install/consumer against it
# with find_package(aec), and runs it.
set -euo pipefail
build_dir=$1
source_dir=$(cd "$(dirname "$0")" && pwd)/consumer
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source_dir" -B "$tmp/build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/consumer" "sqlite://$tmp/aec.db" | grep -q "working with fencing token 1"
"$tmp/prefix/bin/aec" --version
# The installed light aec finds libexec/aec/aec-full for a network store: the error is the http
# store's own (nothing listens on port 9), not "needs aec-full".
if out=$("$tmp/prefix/bin/aec" status install/probe --store http://127.0.0.1:9 2>&1); then
  echo "aec status against nothing answered: $out" >&2
  exit 1
fi
grep -q "cannot reach aecd at http://127.0.0.1:9" <<<"$out" || { echo "unexpected: $out" >&2; exit 1; }
echo "installed package found, linked and run"
