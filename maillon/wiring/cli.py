"""The `maillon` command: init, up, user add, keys rotate, directory import, team add and
rota, dossiers purge."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from tqdm import tqdm

from appservice.directory import bind_directory_entry
from appservice.matrix_api import AppserviceApi
from dossier_api.domain import retention
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.directory import upsert_professional
from dossier_api.domain.directory_import import DirectoryFileError, import_extract, open_source
from dossier_api.domain.models import LEVELS
from dossier_api.domain.service import DossierService
from maillon.shared.circle import DirectoryEntry
from maillon.shared.clock import utcnow
from maillon.shared.crypto import KeyRing
from maillon.shared.homeserver_client import HomeserverError, is_up, register_user
from maillon.shared.passwords import weakness
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import Deployment, SettingsError, load
from maillon.shared.store import make_engine
from maillon.wiring.init_deployment import (
    PSC_ISSUER,
    InitError,
    InitOptions,
    ProSanteConnect,
    init_deployment,
)
from maillon.wiring.key_rotation import rotate
from maillon.wiring.supervisor import StartupFailure, Supervisor
from maillon.wiring.workers import DEFAULT_WORKER_BASE_PORT, PORTS_NEEDED

RPPS_RE = re.compile(r"^[0-9]{11}$")
ADELI_RE = re.compile(r"^[0-9][0-9AB][0-9]{7}$")
MAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CliError(Exception):
    """A command-line value is wrong; the message says which and why."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"numéro de port attendu, pas « {text} »") from exc
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port hors limites : {value}")
    return value


# argparse's own messages, in French (the rest of the command line speaks French).
_ARGPARSE_FR = (
    (re.compile(r"^the following arguments are required: (.*)$"), r"arguments obligatoires : \1"),
    (re.compile(r"^unrecognized arguments: (.*)$"), r"arguments inconnus : \1"),
    (re.compile(r"^argument (.*?): expected one argument$"), r"argument \1 : une valeur attendue"),
    (
        re.compile(r"^argument (.*?): invalid choice: (.*?) \(choose from (.*)\)$"),
        r"argument \1 : choix invalide \2 (possibles : \3)",
    ),
    (
        re.compile(r"^argument (.*?): invalid (\w+) value: (.*)$"),
        r"argument \1 : valeur invalide \3",
    ),
    (re.compile(r"^argument (.*?): (.*)$"), r"argument \1 : \2"),
)


class _FrenchFormatter(argparse.HelpFormatter):
    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "Usage : " if prefix is None else prefix)


class FrenchParser(argparse.ArgumentParser):
    """An argument parser whose help, section titles and errors are in French."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _FrenchFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "arguments"
        self._optionals.title = "options"
        self.add_argument("-h", "--help", action="help", help="affiche cette aide et quitte")

    def error(self, message: str) -> NoReturn:
        for pattern, french in _ARGPARSE_FR:
            if pattern.match(message):
                message = pattern.sub(french, message)
                break
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog} : erreur : {message}\n")


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", required=True, type=Path, metavar="DOSSIER", help="dossier du déploiement"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = FrenchParser(
        prog="maillon", description="Maillon — coordination des parcours de santé sur Matrix"
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMANDE",
        parser_class=FrenchParser,
        title="commandes",
    )

    init = sub.add_parser("init", help="génère un déploiement complet dans un dossier")
    _dir_option(init)
    init.add_argument(
        "--server-name",
        metavar="NOM",
        required=True,
        help="nom du serveur Matrix (ex. sante.example)",
    )
    init.add_argument(
        "--database-url",
        metavar="URL",
        help="postgresql://utilisateur@hôte:port/base pour Synapse et Maillon (défaut : SQLite)",
    )
    init.add_argument(
        "--bind", metavar="ADRESSE", default="127.0.0.1", help="adresse d'écoute (défaut 127.0.0.1)"
    )
    init.add_argument(
        "--client-port", metavar="PORT", type=_port, default=8008, help="API client Synapse (8008)"
    )
    init.add_argument(
        "--admin-port",
        metavar="PORT",
        type=_port,
        default=8009,
        help="écoute locale (127.0.0.1) de Synapse pour Maillon et l'API d'administration, "
        "si --bind n'est pas une adresse locale (8009)",
    )
    init.add_argument(
        "--dossier-port", metavar="PORT", type=_port, default=8090, help="API dossier (8090)"
    )
    init.add_argument(
        "--appservice-port", metavar="PORT", type=_port, default=8091, help="appservice (8091)"
    )
    init.add_argument(
        "--mail-port", metavar="PORT", type=_port, default=2525, help="relais SMTP MSSanté (2525)"
    )
    init.add_argument(
        "--federation-port", type=_port, help="écoute de fédération TLS (certificat auto-signé)"
    )
    init.add_argument(
        "--federation-loopback",
        action="store_true",
        help="fédération locale de test (certificats non vérifiés, 127.0.0.1 autorisé)",
    )
    init.add_argument(
        "--peer-server",
        action="append",
        default=[],
        metavar="SERVEUR",
        help=(
            "serveur partenaire admis dans les salles patient (répétable ; amorce la liste "
            "que tient ensuite la console, /admin/federation)"
        ),
    )
    init.add_argument(
        "--workers",
        action="store_true",
        help="workers Synapse derrière nginx, réplication Redis (PostgreSQL requis)",
    )
    init.add_argument(
        "--redis-url",
        metavar="URL",
        help="avec --workers : redis://hôte:port (défaut : Redis privé lancé par maillon up)",
    )
    init.add_argument(
        "--worker-base-port",
        metavar="PORT",
        type=_port,
        default=DEFAULT_WORKER_BASE_PORT,
        help=f"avec --workers : premier des {PORTS_NEEDED} ports internes "
        f"({DEFAULT_WORKER_BASE_PORT})",
    )
    init.add_argument(
        "--psc-client-id", metavar="ID", help="connexion Pro Santé Connect : identifiant client"
    )
    init.add_argument(
        "--psc-client-secret", metavar="SECRET", help="connexion Pro Santé Connect : secret client"
    )
    init.add_argument(
        "--psc-issuer",
        metavar="URL",
        default=PSC_ISSUER,
        help=f"fournisseur Pro Santé Connect (défaut : production, {PSC_ISSUER})",
    )
    init.add_argument(
        "--testing", action="store_true", help="profil de test : limites de débit relâchées"
    )
    init.add_argument("--force", action="store_true", help="remplace un déploiement existant")
    init.add_argument(
        "--up", action="store_true", help="démarre aussitôt le déploiement créé (make run)"
    )
    init.add_argument(
        "--first-account",
        metavar="IDENTIFIANT",
        help="avec --up : crée ce compte administrateur au premier démarrage",
    )

    up = sub.add_parser("up", help="démarre tous les composants et attend qu'ils soient prêts")
    _dir_option(up)
    up.add_argument(
        "--first-account",
        metavar="IDENTIFIANT",
        help="crée ce compte administrateur au premier démarrage (mot de passe affiché)",
    )
    up.add_argument(
        "--only",
        metavar="COMPOSANTS",
        help="ces composants seulement, séparés par des virgules (un par conteneur)",
    )

    keys = sub.add_parser("keys", help="clés de chiffrement des données de santé")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = keys_sub.add_parser(
        "rotate", help="nouvelle clé, tout est rechiffré avec elle (Maillon arrêté)"
    )
    _dir_option(rotate)
    rotate.add_argument(
        "--drop-old", action="store_true", help="retire les anciennes clés après rechiffrement"
    )

    user = sub.add_parser("user", help="comptes des professionnels")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="crée un compte (enregistrement par secret partagé)")
    _dir_option(add)
    add.add_argument("localpart", metavar="IDENTIFIANT", help="partie locale, ex. marie.durand")
    add.add_argument(
        "--password", metavar="MOT_DE_PASSE", required=True, help="mot de passe du compte"
    )
    add.add_argument("--admin", action="store_true", help="compte administrateur du serveur")
    add.add_argument("--display-name", metavar="NOM", help="nom affiché")
    add.add_argument(
        "--rpps", metavar="NUMÉRO", help="numéro RPPS (11 chiffres) : lie le compte à l'annuaire"
    )
    add.add_argument(
        "--adeli", metavar="NUMÉRO", help="numéro ADELI (9 caractères), à défaut de RPPS"
    )
    add.add_argument(
        "--profession", metavar="PROFESSION", help="profession (ex. infirmier, médecin généraliste)"
    )
    add.add_argument(
        "--structure",
        metavar="STRUCTURE",
        help="structure d'exercice (ex. DAC 31, CPTS Toulouse Nord)",
    )
    add.add_argument(
        "--mssante", metavar="ADRESSE", help="adresse de messagerie sécurisée de santé (MSSanté)"
    )
    directory = sub.add_parser("directory", help="annuaire national (Annuaire Santé)")
    directory_sub = directory.add_subparsers(
        dest="directory_command", required=True, metavar="ACTION"
    )
    imp = directory_sub.add_parser(
        "import",
        help="importe un extrait public (PS_LibreAcces_Personne_activite ou "
        "Extraction_Correspondance_MSSante, .txt ou .zip)",
    )
    _dir_option(imp)
    imp.add_argument("file", type=Path, metavar="FICHIER", help="extrait .txt ou .zip")
    imp.add_argument("--quiet", action="store_true", help="sans barre de progression")
    imp.add_argument(
        "--force",
        action="store_true",
        help="importer même un fichier nettement plus petit que l'import précédent",
    )
    _team_parsers(sub)
    dossiers = sub.add_parser("dossiers", help="dossiers de coordination")
    dossiers_sub = dossiers.add_subparsers(dest="dossiers_command", required=True, metavar="ACTION")
    purge = dossiers_sub.add_parser(
        "purge",
        help="applique la politique de conservation des parcours : archive les dossiers "
        "clos depuis la durée prévue, purge ceux dont la durée de conservation est échue "
        "(sauf gel juridique)",
    )
    _dir_option(purge)
    purge.add_argument(
        "--dry-run", action="store_true", help="liste ce qui serait archivé et purgé, sans agir"
    )
    return parser


def _team_parsers(sub: Any) -> None:
    team = sub.add_parser("team", help="équipes ressources (sollicitées par les cercles de soins)")
    team_sub = team.add_subparsers(dest="team_command", required=True, metavar="ACTION")
    add = team_sub.add_parser("add", help="crée une équipe ressource")
    _dir_option(add)
    add.add_argument("slug", metavar="SLUG", help="identifiant court (ex. usp-31)")
    add.add_argument("--name", required=True, metavar="NOM", help="nom de l'équipe")
    add.add_argument("--level", required=True, choices=sorted(LEVELS), help="niveau d'expertise")
    add.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="@COMPTE:SERVEUR[=RÔLE]",
        help="membre (répétable), avec son rôle dans l'équipe",
    )
    add.add_argument(
        "--coordinator",
        action="append",
        default=[],
        metavar="@COMPTE:SERVEUR[=RÔLE]",
        help="coordinateur de l'équipe (tient le planning ; répétable)",
    )
    add.add_argument(
        "--pathway", action="append", default=[], metavar="PARCOURS", help="parcours servi"
    )
    add.add_argument("--expertise", default="", metavar="TEXTE", help="expertise")
    add.add_argument("--territory", default="", metavar="TEXTE", help="territoire couvert")
    add.add_argument("--structure-id", metavar="ID", help="structure propriétaire")
    add.add_argument(
        "--structure-account", metavar="@COMPTE:SERVEUR", help="compte de la structure (escalade)"
    )
    add.add_argument(
        "--response-time", type=int, default=4 * 3600, metavar="SECONDES", help="délai de réponse"
    )
    add.add_argument(
        "--exit-delay",
        type=int,
        default=7 * 86400,
        metavar="SECONDES",
        help="maintien dans le cercle après la fin de la sollicitation",
    )
    rota = team_sub.add_parser("rota", help="remplace le planning de garde d'une équipe")
    _dir_option(rota)
    rota.add_argument("slug", metavar="SLUG", help="identifiant de l'équipe")
    rota.add_argument("file", type=Path, nargs="?", metavar="FICHIER", help="planning YAML ou JSON")
    rota.add_argument(
        "--clear", action="store_true", help="sans planning : tous les membres de garde"
    )


def _members(values: list[str], coordinator: bool) -> list[dict[str, Any]]:
    out = []
    for value in values:
        user_id, _, role = value.partition("=")
        out.append({"user_id": user_id, "role": role, "coordinator": coordinator})
    return out


def _team(args: argparse.Namespace) -> int:
    deployment = load(args.dir)
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url)
    service = DossierService(engine, deployment, component="cli")
    admin = Caller("maillon-cli", True, "cli")
    try:
        if args.team_command == "add":
            team = service.add_team(
                admin,
                {
                    "slug": args.slug,
                    "name": args.name,
                    "level": args.level,
                    "members": _members(args.coordinator, True) + _members(args.member, False),
                    "pathways": args.pathway,
                    "expertise": args.expertise,
                    "territory": args.territory,
                    "structure_id": args.structure_id,
                    "structure_account": args.structure_account,
                    "response_seconds": args.response_time,
                    "exit_delay_seconds": args.exit_delay,
                },
            )
            print(
                f"Équipe créée : {team['name']} ({team['level_label']}), adresse {team['address']}"
            )
            print(f"{len(team['members'])} membre(s) ; sans planning, tous sont de garde.")
            return 0
        if args.clear == (args.file is not None):
            raise CliError("donnez un FICHIER de planning, ou --clear")
        data = None if args.clear else yaml.safe_load(args.file.read_text(encoding="utf-8"))
        team = service.set_rota(admin, args.slug, data)
        print(f"Planning de l'équipe {team['name']} enregistré.")
        return 0
    except ApiError as exc:
        raise CliError(exc.message) from exc
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"planning illisible : {exc}") from exc
    finally:
        engine.dispose()


def _dossiers_purge(args: argparse.Namespace) -> int:
    deployment = load(args.dir)
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url)
    try:
        steps = retention.apply(engine, utcnow(), dry_run=args.dry_run, actor="maillon-cli")
    finally:
        engine.dispose()
    if not steps:
        print("Rien à archiver ni à purger.")
    for step in steps:
        print(step.french())
    if args.dry_run:
        print("(simulation : rien n'a été modifié)")
    elif any(s.action == "purge" for s in steps):
        print("Les salles des dossiers purgés seront supprimées par le service d'application.")
    return 0


def _directory_import(args: argparse.Namespace) -> int:
    deployment = load(args.dir)
    try:
        total = open_source(args.file).size
    except DirectoryFileError as exc:
        raise CliError(str(exc)) from exc
    install_key_ring(KeyRing.for_secrets(deployment.secrets))  # migrations may need it
    engine = make_engine(deployment.settings.database_url)
    bar = tqdm(
        total=total, unit="o", unit_scale=True, desc="Import", disable=args.quiet, file=sys.stderr
    )
    try:
        report = import_extract(engine, args.file, progress=bar.update, force=args.force)
    except DirectoryFileError as exc:
        raise CliError(f"fichier refusé, rien n'a été importé : {exc}") from exc
    finally:
        bar.close()
        engine.dispose()
    print("\n".join(report.french()))
    return 0


def _worker_ports(args: argparse.Namespace) -> tuple[int, ...] | None:
    if not args.workers:
        return None
    last = args.worker_base_port + PORTS_NEEDED - 1
    if last > 65535:
        raise CliError(f"--worker-base-port : {PORTS_NEEDED} ports nécessaires, au-delà de 65535")
    return tuple(range(args.worker_base_port, last + 1))


def _psc(args: argparse.Namespace) -> ProSanteConnect | None:
    if not args.psc_client_id and not args.psc_client_secret:
        return None
    if not (args.psc_client_id and args.psc_client_secret):
        raise CliError("--psc-client-id et --psc-client-secret vont ensemble")
    return ProSanteConnect(args.psc_client_id, args.psc_client_secret, args.psc_issuer)


def _init(args: argparse.Namespace) -> int:
    root = init_deployment(
        InitOptions(
            directory=args.dir,
            server_name=args.server_name,
            database_url=args.database_url,
            bind=args.bind,
            client_port=args.client_port,
            admin_port=args.admin_port,
            dossier_port=args.dossier_port,
            appservice_port=args.appservice_port,
            mail_port=args.mail_port,
            federation_port=args.federation_port,
            federation_loopback=args.federation_loopback,
            peer_servers=tuple(args.peer_server),
            testing=args.testing,
            force=args.force,
            worker_ports=_worker_ports(args),
            redis_url=args.redis_url,
            psc=_psc(args),
        )
    )
    print(f"Déploiement créé dans {root} (secrets générés, fichiers en mode 0600).")
    if args.up:
        print("Démarrage…")
        return Supervisor(load(root)).run(first_account=args.first_account)
    print(f"Démarrez-le avec : maillon up --dir {root}")
    return 0


def _directory_entry(args: argparse.Namespace, user_id: str) -> DirectoryEntry | None:
    if not (args.rpps or args.adeli or args.profession or args.structure or args.mssante):
        return None
    if args.mssante and not MAIL_RE.match(args.mssante):
        raise CliError("--mssante : adresse de messagerie invalide")
    if args.rpps and not RPPS_RE.match(args.rpps):
        raise CliError("--rpps : 11 chiffres attendus")
    if args.adeli and not ADELI_RE.match(args.adeli):
        raise CliError("--adeli : 9 caractères (chiffres, 2A/2B pour la Corse) attendus")
    if not (args.rpps or args.adeli):
        raise CliError("un numéro --rpps ou --adeli est requis pour l'annuaire")
    if not args.profession:
        raise CliError("--profession est requise avec --rpps/--adeli")
    return DirectoryEntry(
        user_id, args.profession, args.rpps, args.adeli, args.structure, args.mssante
    )


async def _bind(
    deployment: Deployment, entry: DirectoryEntry, display_name: str | None
) -> str | None:
    """The entry goes to the dossier store and to its mirror the Synapse module reads;
    returns the id of the structure the professional was attached to."""
    install_key_ring(KeyRing.for_secrets(deployment.secrets))  # migrations may need it
    engine = make_engine(deployment.settings.database_url)
    try:
        structure_id = upsert_professional(engine, entry, display_name)
    finally:
        engine.dispose()
    async with AppserviceApi.for_deployment(deployment) as api:
        await bind_directory_entry(api, deployment.settings.server_name, entry)
    return structure_id


def _user_add(args: argparse.Namespace) -> int:
    deployment = load(args.dir)
    planned = _directory_entry(args, deployment.settings.user_id(args.localpart))
    weak = weakness(
        args.password,
        [args.localpart, *args.localpart.split("."), args.display_name or "", "maillon"],
    )
    if weak is not None:
        raise CliError(f"--password : {weak}")
    url = deployment.settings.homeserver.url
    if not is_up(url):
        print(
            f"Synapse ne répond pas sur {url} : démarrez d'abord « maillon up --dir {args.dir} ».",
            file=sys.stderr,
        )
        return 1
    registered = register_user(
        url,
        deployment.secrets.registration_shared_secret,
        args.localpart,
        args.password,
        admin=args.admin,
        displayname=args.display_name,
    )
    print(f"Compte créé : {registered.user_id}")
    if planned is not None:
        structure_id = asyncio.run(_bind(deployment, planned, args.display_name))
        number = f"RPPS {planned.rpps}" if planned.rpps else f"ADELI {planned.adeli}"
        who = f"{args.display_name}, " if args.display_name else ""
        print(f"Inscrit à l'annuaire : {who}{planned.profession}, {number}")
        if planned.structure:
            print(f"Rattaché à la structure : {planned.structure} (identifiant {structure_id})")
        else:
            print("Rattaché à aucune structure (--structure pour en indiquer une).")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    deployment = load(args.dir)
    if is_up(deployment.settings.dossier_api.url, "/health") or is_up(
        deployment.settings.appservice.listener.url, "/health"
    ):
        print(
            "maillon : arrêtez d'abord Maillon (les composants gardent la clé en mémoire).",
            file=sys.stderr,
        )
        return 1
    key_id, count = rotate(args.dir, args.drop_old)
    print(f"Nouvelle clé {key_id} : {count} valeurs rechiffrées.")
    if not args.drop_old:
        print("Les anciennes clés restent pour déchiffrer ; --drop-old les retire.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "up":
            deployment = load(args.dir)
            only = tuple(k for k in (args.only or "").split(",") if k)
            try:
                supervisor = Supervisor(deployment, only=only)
            except StartupFailure as exc:
                raise CliError(f"--only : {exc}") from exc
            return supervisor.run(first_account=args.first_account)
        if args.command == "user":
            return _user_add(args)
        if args.command == "keys":
            return _keys_rotate(args)
        if args.command == "directory":
            return _directory_import(args)
        if args.command == "team":
            return _team(args)
        if args.command == "dossiers":
            return _dossiers_purge(args)
    except (InitError, SettingsError, CliError) as exc:
        print(f"maillon : {exc}", file=sys.stderr)
        return 2
    except HomeserverError as exc:
        if exc.errcode == "M_USER_IN_USE":
            print("maillon : cet identifiant est déjà pris sur ce serveur.", file=sys.stderr)
        elif exc.errcode == "M_INVALID_USERNAME":
            print(
                "maillon : identifiant invalide (minuscules, chiffres et . _ = - / + seulement).",
                file=sys.stderr,
            )
        else:
            print(f"maillon : le serveur d'accueil a refusé : {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
