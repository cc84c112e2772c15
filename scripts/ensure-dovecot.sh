#!/usr/bin/env bash
# Make sure Dovecot's binaries are installed for the mail relay tests (the tests start
# their own Dovecot on free ports with a throw-away configuration; the system service is
# neither configured nor needed).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dovecot >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ]; then
    echo "Dovecot absent : installation (apt-get)…"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        dovecot-imapd >/dev/null
    # The tests run their own instance; do not keep the packaged service running.
    if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable --now dovecot 2>/dev/null || true; fi
    as_root service dovecot stop >/dev/null 2>&1 || true
fi
dovecot --version
