"""`maillon init`: generate a complete deployment directory from the templates in config/
(installed as the package ``maillon_config``)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
from signedjson.key import generate_signing_key, write_signing_keys

from maillon.shared import settings as settings_mod
from maillon.shared.circle import ROUTED_PREFIXES, SERVER_NAME_RE
from maillon.shared.federation_peers import PEERS_FILE, Peer, write_peers
from maillon.shared.tls import write_self_signed_certificate
from maillon.wiring import workers as workers_mod


class InitError(Exception):
    """The deployment cannot be generated; the message says why."""


@dataclass(frozen=True)
class DatabaseTarget:
    kind: str  # "sqlite" or "postgresql"
    user: str = ""
    password: str = ""
    host: str = ""
    port: int = 5432
    name: str = ""


# Pro Santé Connect (ANS): its production issuer; its scopes (``scope_all``: the identity
# and the professional's exercises, ``SubjectNameID``/``SubjectRefPro``); the eIDAS level
# every authorization request asks for (``acr_values=eidas1``, the ``acr`` of the ID
# token). Checked against ANS's own client, github.com/ansforge/keycloak-prosanteconnect
# (ProSanteConnectIdentityProvider.createAuthorizationUrl, EidasLevel, psc.properties) and
# ANS's "documentation technique" of PSC (industriels.esante.gouv.fr).
PSC_ISSUER = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
PSC_SCOPES = ("openid", "scope_all")
PSC_ACR = "eidas1"
# ANS's realms (production auth.esw…, test "BAS" auth.bas.psc…): the authorization page is
# the e-CPS wallet's (wallet.<same domain>/auth), published by their non-standard
# ``.well-known/wallet-openid-configuration``, not the realm's standard discovery document
# that Synapse would read: their endpoints are written out (psc.properties, above).
PSC_REALM = re.compile(
    r"^https://auth\.((?:[a-z0-9-]+\.)*esante\.gouv\.fr)/auth/realms/esante-wallet$"
)


@dataclass(frozen=True)
class ProSanteConnect:
    """The OpenID Connect client Maillon's homeserver is registered as at Pro Santé Connect."""

    client_id: str
    client_secret: str
    issuer: str = PSC_ISSUER


@dataclass(frozen=True)
class InitOptions:
    directory: Path
    server_name: str
    database_url: str | None = None
    bind: str = "127.0.0.1"
    client_port: int = 8008
    # Loopback listener of Maillon's components and Synapse's admin API, when ``bind`` is
    # not a loopback address (then the client listener serves no admin API).
    admin_port: int = 8009
    dossier_port: int = 8090
    appservice_port: int = 8091
    mail_port: int = 2525
    federation_port: int | None = None
    federation_loopback: bool = False
    peer_servers: tuple[str, ...] = ()
    testing: bool = False
    with_maillon: bool = True
    force: bool = False
    # Synapse workers behind nginx (PostgreSQL only): the ports of the main client listener,
    # the replication listener, each worker (in the order of workers.DEFAULT_LAYOUT) and each
    # dossier API process.
    worker_ports: tuple[int, ...] | None = None
    redis_url: str | None = None
    psc: ProSanteConnect | None = None


def parse_database_url(url: str | None) -> DatabaseTarget:
    if url is None:
        return DatabaseTarget(kind="sqlite")
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InitError(
            f"--database-url : schéma « {parts.scheme} » non pris en charge "
            "(postgresql://utilisateur@hôte:port/base attendu ; SQLite par défaut)"
        )
    name = parts.path.lstrip("/")
    if not name:
        raise InitError("--database-url : le nom de la base manque (…/nom_de_base)")
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise InitError(f"--database-url : port illisible ({exc})") from exc
    return DatabaseTarget(
        kind="postgresql",
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        host=parts.hostname or "127.0.0.1",
        port=port,
        name=name,
    )


def _token() -> str:
    return secrets.token_urlsafe(48)


def _generate_secrets() -> dict[str, str]:
    return {
        "as_token": _token(),
        "hs_token": _token(),
        "registration_shared_secret": _token(),
        "macaroon_secret_key": _token(),
        "form_secret": _token(),
        "data_key_id": dt.datetime.now(dt.UTC).strftime("k%Y%m%d%H%M%S"),
        "data_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "worker_replication_secret": _token(),
    }


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("maillon_config", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - YAML output, values are validated before rendering
    )
    env.filters["regex_escape"] = re.escape
    env.filters["q"] = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    return env


INIT_REASON = "déclaré à l'initialisation (maillon init --peer-server)"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def is_loopback(address: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check(options: InitOptions) -> None:
    if not SERVER_NAME_RE.match(options.server_name):
        raise InitError(f"--server-name : nom de serveur invalide « {options.server_name} »")
    ports = {
        "--client-port": options.client_port,
        "--dossier-port": options.dossier_port,
        "--appservice-port": options.appservice_port,
        "--mail-port": options.mail_port,
    }
    if options.federation_port is not None:
        ports["--federation-port"] = options.federation_port
    if not is_loopback(options.bind) and options.worker_ports is None:
        ports["--admin-port"] = options.admin_port
    if options.worker_ports is not None:
        if len(options.worker_ports) != workers_mod.PORTS_NEEDED:
            raise InitError(f"--workers : {workers_mod.PORTS_NEEDED} ports attendus")
        for n, port in enumerate(options.worker_ports):
            ports[f"--worker-base-port (+{n})"] = port
    elif options.redis_url is not None:
        raise InitError("--redis-url ne sert qu'avec --workers")
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise InitError(f"{flag} : port hors limites ({port})")
    for peer in options.peer_servers:
        if not SERVER_NAME_RE.match(peer):
            raise InitError(f"--peer-server : nom de serveur invalide « {peer} »")
    if len(set(ports.values())) != len(ports):
        raise InitError(
            "les ports de Synapse, de l'API dossier et de l'appservice doivent différer"
        )


def init_deployment(options: InitOptions) -> Path:
    """Write the deployment; refuse to overwrite one unless ``force``. Returns its directory."""
    _check(options)
    root = options.directory.resolve()
    marker = root / settings_mod.CONFIG_FILE
    if marker.exists() or (root / "homeserver.yaml").exists():
        if not options.force:
            raise InitError(
                f"{root} contient déjà un déploiement : rien n'a été modifié "
                "(ajoutez --force pour le remplacer, secrets compris)"
            )
    database = parse_database_url(options.database_url)
    workers = _workers(options, database, root)
    for sub in ("", "data", "data/media_store", "logs", "run", "bot", "workers"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    generated = _generate_secrets()
    public_url = f"http://{options.bind}:{options.client_port}"
    # Workers: nginx keeps the admin API on loopback; one process: a loopback listener.
    admin_port = None if is_loopback(options.bind) or workers else options.admin_port
    homeserver_url = public_url if admin_port is None else f"http://127.0.0.1:{admin_port}"
    if database.kind == "sqlite":
        store_url = f"sqlite:///{root}/data/maillon.db"
    else:
        assert options.database_url is not None
        store_url = options.database_url
    context = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dir": str(root),
        "server_name": options.server_name,
        "bind": options.bind,
        "client_port": options.client_port,
        "admin_port": admin_port,
        "public_url": public_url,
        "dossier_port": options.dossier_port,
        "appservice_port": options.appservice_port,
        "mail_port": options.mail_port,
        "mail_intake_processes": workers_mod.MAIL_INTAKE_PROCESSES if workers is not None else 0,
        "federation_port": options.federation_port,
        "federation_loopback": options.federation_loopback,
        "homeserver_url": homeserver_url,
        "database": database,
        "store_url": store_url,
        "secrets": generated,
        "testing": options.testing,
        "with_maillon": options.with_maillon,
        "appservice_id": "maillon",
        "appservice_sender": "maillon",
        "ghost_prefix": "_maillon_",
        "routed_prefixes": list(ROUTED_PREFIXES.values()),
        "bot_localpart": "coordination",
        "log_name": "homeserver",
        "workers": workers,
        "redis": _redis(workers, root),
        "psc": _psc_context(options.psc, options.dossier_port, options.bind),
        "sync_routes": workers_mod.SYNC_ROUTES,
        "client_routes": workers_mod.CLIENT_ROUTES,
    }
    env = template_environment()
    outputs = {
        "homeserver.yaml": "homeserver.yaml.j2",
        "log.config": "log.config.j2",
    }
    if options.with_maillon:
        outputs.update(
            {
                "appservice-registration.yaml": "appservice-registration.yaml.j2",
                settings_mod.CONFIG_FILE: "maillon.yaml.j2",
                settings_mod.SECRETS_FILE: "secrets.yaml.j2",
            }
        )
    if workers is not None:
        outputs["nginx.conf"] = "nginx.conf.j2"
    for target, template in outputs.items():
        _write_private(root / target, env.get_template(template).render(**context))
    for worker in workers.processes if workers is not None else ():
        config_file = workers_mod.worker_config_file(worker)
        each = dict(context, worker=worker, config_file=config_file, log_name=worker.name)
        _write_private(root / config_file, env.get_template("worker.yaml.j2").render(**each))
        log_config = root / "workers" / f"{worker.name}.log.config"
        _write_private(log_config, env.get_template("log.config.j2").render(**each))
    key = generate_signing_key("a_" + secrets.token_hex(2))
    fd = os.open(root / "signing.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        write_signing_keys(handle, [key])
    if options.federation_port is not None:
        write_self_signed_certificate(root / "tls", options.server_name.split(":")[0])
    if options.with_maillon:
        # The federation allow list the console keeps, seeded from --peer-server.
        added_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_peers(
            root / PEERS_FILE,
            [Peer(s, INIT_REASON, None, added_at) for s in dict.fromkeys(options.peer_servers)],
        )
        loaded = settings_mod.load(root)  # what we wrote must be what we accept
        assert loaded.settings.homeserver.workers == workers
        config = element_config(
            public_url, options.server_name, loaded.settings.dossier_api.external_url
        )
        # No secret in it: readable by the web server that serves Element.
        (root / ELEMENT_CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return root


def _psc_context(
    psc: ProSanteConnect | None, dossier_port: int, bind: str
) -> dict[str, Any] | None:
    """The homeserver's ``oidc_providers`` entry for Pro Santé Connect, checked."""
    if psc is None:
        return None
    parts = urlsplit(psc.issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InitError("--psc-issuer : adresse https:// attendue")
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,200}", psc.client_id):
        raise InitError("--psc-client-id : identifiant client illisible")
    if not psc.client_secret or len(psc.client_secret) > 500 or "\n" in psc.client_secret:
        raise InitError("--psc-client-secret : secret client illisible")
    issuer = psc.issuer.rstrip("/")
    realm = PSC_REALM.match(issuer)
    endpoints = None
    if realm:
        openid = f"{issuer}/protocol/openid-connect"
        endpoints = {
            "authorization_endpoint": f"https://wallet.{realm.group(1)}/auth",
            "token_endpoint": f"{openid}/token",
            "userinfo_endpoint": f"{openid}/userinfo",
            "jwks_uri": f"{openid}/certs",
        }
    return {
        "client_id": psc.client_id,
        "client_secret": psc.client_secret,
        "issuer": issuer,
        "scopes": list(PSC_SCOPES),
        "acr_values": PSC_ACR,
        "endpoints": endpoints,
        # Plain HTTP only for a provider on this machine (the tests' own).
        "skip_verification": parts.scheme == "http",
        "workspace_url": f"http://{bind}:{dossier_port}/",
    }


ELEMENT_CONFIG = "element-config.json"
# Element Web's widget lifecycle module (element-hq/element-web-modules) reads this key.
WIDGET_LIFECYCLE = "io.element.element-web-modules.widget-lifecycle"


def element_config(homeserver_url: str, server_name: str, dossier_url: str) -> dict[str, Any]:
    """A sample ``config.json`` for the Element Web that serves this deployment: no
    integration manager (they receive users' OpenID tokens: see the README), and Maillon's
    dossier widget pre-approved (loaded without asking, the user's identity given to it
    without a dialog) through the widget lifecycle module."""
    return {
        "default_server_config": {
            "m.homeserver": {"base_url": homeserver_url, "server_name": server_name}
        },
        "disable_custom_urls": True,
        "disable_guests": True,
        # Empty: Element offers no integration manager (and hands it no OpenID token).
        "integrations_ui_url": "",
        "integrations_rest_url": "",
        "integrations_widgets_urls": [],
        WIDGET_LIFECYCLE: {
            "widget_permissions": {
                f"{dossier_url}/widget?*": {
                    "preload_approved": True,
                    "identity_approved": True,
                    "capabilities_approved": [],
                }
            }
        },
        "default_country_code": "FR",
        "setting_defaults": {"language": "fr"},
    }


def _workers(
    options: InitOptions, database: DatabaseTarget, root: Path
) -> settings_mod.WorkerSettings | None:
    if options.worker_ports is None:
        return None
    if database.kind != "postgresql":
        raise InitError(
            "--workers : les workers Synapse partagent une base PostgreSQL "
            "(--database-url postgresql://… requis)"
        )
    if not options.with_maillon:
        raise InitError("--workers : déploiement Maillon complet seulement")
    workers = workers_mod.worker_settings(options.worker_ports, options.redis_url)
    _redis(workers, root)  # refuse an unreadable --redis-url now
    return workers


def _redis(
    workers: settings_mod.WorkerSettings | None, root: Path
) -> workers_mod.RedisTarget | None:
    if workers is None:
        return None
    try:
        return workers_mod.redis_target(workers, str(workers_mod.private_redis_socket(root)))
    except ValueError as exc:
        raise InitError(f"--redis-url : {exc}") from exc
