#!/bin/sh
# `init`: generate the deployment in /data from the environment (first start only), then
# exit (docker/compose.yaml's `init` service). Otherwise: generate it if absent, then run
# `maillon up --dir /data` with the arguments given (e.g. `--only synapse_client1`: one
# component per container).
set -eu
generate() {  # its own positional parameters: the caller's arguments stay as given
    : "${MAILLON_SERVER_NAME:?set MAILLON_SERVER_NAME (e.g. sante.example.fr)}"
    set -- --dir /data --server-name "$MAILLON_SERVER_NAME" --bind 0.0.0.0
    if [ -n "${MAILLON_DATABASE_URL:-}" ]; then
        set -- "$@" --database-url "$MAILLON_DATABASE_URL"
    fi
    if [ -n "${MAILLON_REDIS_URL:-}" ]; then  # Synapse workers, as in compose.yaml
        set -- "$@" --workers --redis-url "$MAILLON_REDIS_URL"
    fi
    maillon init "$@"
    # The SMTP relay is reachable from outside (compose publishes 2525): it requires
    # STARTTLS and a client certificate signed by the MSSanté CA for every peer outside
    # loopback. The certificates are compose secrets (see compose.yaml).
    python3 - <<'PY'
import yaml
path = "/data/maillon.yaml"
data = yaml.safe_load(open(path, encoding="utf-8"))
data["mail"]["inbound"].update(
    tls="starttls",
    cert_file="/run/secrets/smtp_cert",
    key_file="/run/secrets/smtp_key",
    client_ca_file="/run/secrets/mssante_ca",
    require_client_certificate=True,
)
yaml.safe_dump(data, open(path, "w", encoding="utf-8"), allow_unicode=True)
PY
}
if [ ! -f /data/maillon.yaml ]; then
    generate
fi
if [ "${1:-}" = "init" ]; then
    exit 0
fi
exec maillon up --dir /data "$@"
