#!/usr/bin/env bash
# Installs the npm packages of the browser test (tests/dashboard: playwright-core, pinned in its
# package-lock.json) into tests/dashboard/node_modules. Idempotent: does nothing when the
# installed packages already match the lock file. Chromium itself is a Debian package
# (scripts/packages.txt); playwright-core never downloads a browser.
#
#   scripts/install-test-deps.sh
#
# Without node/npm it says so and exits 0: the browser test then reports itself skipped.
set -euo pipefail
cd "$(dirname "$0")/../tests/dashboard"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! command -v npm >/dev/null; then
  say "Browser test: npm not found; install Node.js 20 to run tests/dashboard (skipped until then)"
  exit 0
fi
# npm writes node_modules/.package-lock.json on install; unchanged lock file: nothing to do.
if [ -d node_modules/playwright-core ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  say "Browser test: npm packages present"
  exit 0
fi
say "Browser test: npm ci in tests/dashboard"
# No browser download (playwright-core has none; the variable guards against a future one).
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
if [ ! -x /usr/bin/chromium ]; then
  echo "note: /usr/bin/chromium is missing (Debian package chromium, in scripts/packages.txt);" \
       "the browser test is skipped until it is installed"
fi
