#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests:
# install it with apt-get if missing, start it if stopped, allow local test logins.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL absent : installation (apt-get)…"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    echo "PostgreSQL $version arrêté : démarrage…"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    echo "Autorisation des connexions locales de test dans $hba"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
fi
pg_isready -h 127.0.0.1 -p 5432
