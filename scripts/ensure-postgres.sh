#!/usr/bin/env bash
# Make sure PostgreSQL's server programs are installed for the tests (apt-get if missing).
# The tests start their own private cluster (initdb in a temporary directory, on a free
# loopback port: tests/harness/postgres.py); the machine's own clusters are left alone.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "PostgreSQL absent : installation (apt-get)…"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
initdb="$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)"
echo "PostgreSQL pour les tests : $("$initdb" --version) (grappe privée créée par les tests)"
