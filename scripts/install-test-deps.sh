#!/usr/bin/env bash
# Installs the npm packages the tests need, each pinned by its package-lock.json:
#   - tests/dashboard: playwright-core, for the browser test of aecd's dashboard (Chromium itself
#     is a Debian package, scripts/packages.txt; playwright-core never downloads a browser);
#   - tests/dynalite: dynalite, the DynamoDB-compatible server the dynamodb:// store's tests run
#     against (scripts/dev-servers.sh starts it).
# Idempotent: does nothing for a folder whose installed packages already match its lock file.
#
#   scripts/install-test-deps.sh
#
# Without node/npm it says so and exits 0: the tests that need them then report themselves
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! command -v npm >/dev/null; then
  say "npm not found: install Node.js 20 to run the browser and DynamoDB tests (skipped until then)"
  exit 0
fi
# npm ci in DIR unless node_modules/PACKAGE is there and newer than the lock file (npm writes
# node_modules/.package-lock.json on install).
install() {
  local dir=$1 package=$2 what=$3
  if [ -d "$dir/node_modules/$package" ] &&
     [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    say "$what: npm packages present"
    return
  fi
  say "$what: npm ci in $dir"
  # No browser download (playwright-core has none; the variable guards against a future one).
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
}
install tests/dashboard playwright-core "Browser test"
install tests/dynalite dynalite "DynamoDB test server"
if [ ! -x /usr/bin/chromium ]; then
  echo "note: /usr/bin/chromium is missing (Debian package chromium, in scripts/packages.txt);" \
       "the browser test is skipped until it is installed"
fi
