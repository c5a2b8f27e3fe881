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
echo "installed package found, linked and run"
