#!/usr/bin/env bash
# Make sure nginx (Debian) and redis-server are installed for the worker deployment tests
# (`maillon init --workers` routes Synapse's endpoints through nginx; `maillon up` starts a
# private Redis when no --redis-url is given). The packaged services are neither configured
# nor needed: Maillon runs its own instances with their own configuration files.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "${missing[*]} absent(s) : installation (apt-get)…"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null
    for service in nginx redis-server; do
        if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable --now "$service" 2>/dev/null || true; fi
        as_root service "$service" stop >/dev/null 2>&1 || true
    done
fi
PATH="$PATH:/usr/sbin" nginx -v
redis-server --version
