#!/bin/sh
# First start: generate the deployment in /data from the environment; then run it.
set -eu
: "${MAILLON_SERVER_NAME:?set MAILLON_SERVER_NAME (e.g. sante.example.fr)}"
if [ ! -f /data/maillon.yaml ]; then
    set -- --dir /data --server-name "$MAILLON_SERVER_NAME" --bind 0.0.0.0
    if [ -n "${MAILLON_DATABASE_URL:-}" ]; then
        set -- "$@" --database-url "$MAILLON_DATABASE_URL"
    fi
    maillon init "$@"
fi
exec maillon up --dir /data
