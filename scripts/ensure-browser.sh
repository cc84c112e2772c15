#!/usr/bin/env bash
# Make sure the real-client tests (tests/clients/) have what they drive: Debian's Chromium
# (driven by Playwright for Python; Playwright's own browser download is never used) and Node
# with npm for matrix-js-sdk (tests/js/, installed from its package-lock.json with `npm ci`),
# and poppler-utils (pdftotext: the dashboards' tests read the monthly report's text).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "Absents : ${missing[*]} — installation (apt-get, quelques minutes)…"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null
fi
/usr/lib/chromium/chromium --version
echo "node $(node --version)"

# matrix-js-sdk and its companions, exactly as locked.
here="$(cd "$(dirname "$0")/.." && pwd)"
js="$here/tests/js"
if [ ! -f "$js/node_modules/.package-lock.json" ] \
   || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
    echo "Paquets Node des tests (npm ci dans tests/js)…"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
