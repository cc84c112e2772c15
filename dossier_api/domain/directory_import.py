"""Import of the national directory's public extracts (Annuaire Santé), streamed in bounded
memory: ``PS_LibreAcces_Personne_activite_*.txt`` (one line per activity of a professional)
and ``Extraction_Correspondance_MSSante_*.txt`` (one line per secure mailbox), plain or
zipped. Formats: /work/shared/data/annuaire-sante/FORMAT.md for the first; the MSSanté
extract's 31 columns as observed in public parsers of it (an ANS data.gouv.fr source map
"Cartographie des sources", 2026-08, and the RPPS digester of F. Laurent's easy_atom tools).

A run is one transaction and one import record: lines are staged by key, then each
professional (all their lines) is compared with what the store holds and added, changed or
left; those the file no longer lists are marked so (history kept). A malformed file is
refused before anything is written; a malformed line is reported by number and its
professional is left exactly as it was (neither updated nor marked unlisted)."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from dossier_api.domain.directory import entry_columns
from dossier_api.domain.models import (
    DirectoryChange,
    DirectoryImport,
    DirectoryMailboxes,
    DirectoryRecord,
    DirectoryStaging,
)
from maillon.shared.clock import utcnow

ACTIVITE_COLUMNS = (
    "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Code civilité d'exercice|"
    "Libellé civilité d'exercice|Code civilité|Libellé civilité|Nom d'exercice|"
    "Prénom d'exercice|Code profession|Libellé profession|Code catégorie professionnelle|"
    "Libellé catégorie professionnelle|Code type savoir-faire|Libellé type savoir-faire|"
    "Code savoir-faire|Libellé savoir-faire|Code mode exercice|Libellé mode exercice|"
    "Numéro SIRET site|Numéro SIREN site|Numéro FINESS site|"
    "Numéro FINESS établissement juridique|Identifiant technique de la structure|"
    "Raison sociale site|Enseigne commerciale site|"
    "Complément destinataire (coord. structure)|"
    "Complément point géographique (coord. structure)|Numéro Voie (coord. structure)|"
    "Indice répétition voie (coord. structure)|Code type de voie (coord. structure)|"
    "Libellé type de voie (coord. structure)|Libellé Voie (coord. structure)|"
    "Mention distribution (coord. structure)|Bureau cedex (coord. structure)|"
    "Code postal (coord. structure)|Code commune (coord. structure)|"
    "Libellé commune (coord. structure)|Code pays (coord. structure)|"
    "Libellé pays (coord. structure)|Téléphone (coord. structure)|"
    "Téléphone 2 (coord. structure)|Télécopie (coord. structure)|"
    "Adresse e-mail (coord. structure)|Code Département (structure)|"
    "Libellé Département (structure)|Ancien identifiant de la structure|"
    "Autorité d'enregistrement|Code secteur d'activité|Libellé secteur d'activité|"
    "Code section tableau pharmaciens|Libellé section tableau pharmaciens"
).split("|")
MSSANTE_COLUMNS = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|"
    "Civilité d'exercice|Nom d'exercice|Prénom d'exercice|Catégorie profession|"
    "Libellé de catégorie profession|Code Profession|Libellé Profession|Code savoir-faire|"
    "Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION|L3COMPLEMENTDISTRIBUTION|"
    "L4NUMEROVOIE|L4COMPLEMENTNUMEROVOIE|NL4TYPEVOIE|L4LIBELLEVOIE|L5LIEUDITMENTION|"
    "L6LIGNEACHEMINEMENT|Code postal|Département|Pays"
).split("|")

RPPS_RE = re.compile(r"^[0-9]{11}$")
ADELI_RE = re.compile(r"^[0-9][0-9AB][0-9]{7}$")
MAILBOX_RE = re.compile(r"^[^@\s|]+@[^@\s|]+\.[^@\s|]+$")
NATIONAL_RE = re.compile(r"^(8[0-9]{11}|0[0-9][0-9AB][0-9]{7})$")
CODE_RE = re.compile(r"^[0-9A-Za-z]{1,10}$")
MAX_REJECTIONS_KEPT = 1000
# A file with this share of lines fewer than the last import of its kind is taken for a
# truncated extract (an interrupted download) and refused unless forced: imported, it would
# mark every professional past the cut as no longer listed.
MAX_SHRINK = 0.2
BATCH = 2000
SEP = "\x1f"  # joins a staged line's fields (a control character no extract holds)
Fields = list[str]


class DirectoryFileError(Exception):
    """The file cannot be imported at all (nothing was written); the message says why."""


class LineError(Exception):
    """One line is malformed; the message (French) says why."""


def _col(columns: list[str], name: str) -> int:
    return columns.index(name)


@dataclass(frozen=True)
class ExtractFormat:
    kind: str
    label: str
    columns: list[str]
    record: Any  # the ORM class whose table holds this kind's records
    # fields of a line -> (national id, fields kept); raises LineError
    parse: Callable[[Fields], tuple[str, Fields] | None]
    # the kept fields of all lines of one national id -> the record's content
    build: Callable[[str, list[Fields]], dict[str, Any]]
    columns_of: Callable[[str, dict[str, Any]], dict[str, Any]]  # more columns of the record

    @property
    def table(self) -> Table:
        return _table(self.record)


def _table(record: Any) -> Table:
    table = record.__table__
    assert isinstance(table, Table)
    return table


A = {name: i for i, name in enumerate(ACTIVITE_COLUMNS)}
M = {name: i for i, name in enumerate(MSSANTE_COLUMNS)}


def _national_id(kind: str, identifier: str, national: str) -> str:
    if kind == "8":
        if not RPPS_RE.match(identifier):
            raise LineError(f"numéro RPPS invalide « {identifier[:20]} » (11 chiffres attendus)")
    elif kind == "0":
        if not ADELI_RE.match(identifier):
            raise LineError(f"numéro ADELI invalide « {identifier[:20]} » (9 caractères attendus)")
    else:
        raise LineError(f"type d'identifiant inconnu « {kind[:5]} » (8 RPPS ou 0 ADELI)")
    if national != kind + identifier:
        raise LineError(
            f"identification nationale « {national[:20]} » différente de {kind}{identifier}"
        )
    return national


def _parse_activite(f: Fields) -> tuple[str, Fields]:
    national = _national_id(
        f[A["Type d'identifiant PP"]], f[A["Identifiant PP"]], f[A["Identification nationale PP"]]
    )
    if not f[A["Nom d'exercice"]].strip():
        raise LineError("nom d'exercice vide")
    code = f[A["Code profession"]]
    if not CODE_RE.match(code):
        raise LineError(f"code profession invalide « {code[:12]} »")
    postal = f[A["Code postal (coord. structure)"]]
    if postal and not re.fullmatch(r"[0-9A-Za-z ]{2,10}", postal):
        raise LineError(f"code postal invalide « {postal[:12]} »")
    return national, f


def _activity(f: Fields) -> dict[str, str]:
    street = " ".join(
        p
        for p in (
            f[A["Numéro Voie (coord. structure)"]],
            f[A["Indice répétition voie (coord. structure)"]],
            f[A["Libellé type de voie (coord. structure)"]],
            f[A["Libellé Voie (coord. structure)"]],
        )
        if p
    )
    values = {
        "mode": f[A["Libellé mode exercice"]],
        "structure": f[A["Raison sociale site"]] or f[A["Enseigne commerciale site"]],
        "structure_id": f[A["Identifiant technique de la structure"]],
        "siret": f[A["Numéro SIRET site"]],
        "finess": f[A["Numéro FINESS site"]],
        "address": street,
        "postal_code": f[A["Code postal (coord. structure)"]],
        "town": f[A["Libellé commune (coord. structure)"]],
        "departement": f[A["Code Département (structure)"]],
        "departement_label": f[A["Libellé Département (structure)"]],
        "phone": f[A["Téléphone (coord. structure)"]],
        "email": f[A["Adresse e-mail (coord. structure)"]],
        "sector": f[A["Libellé secteur d'activité"]],
    }
    return {k: v for k, v in values.items() if v}


def _build_activite(national: str, lines: list[Fields]) -> dict[str, Any]:
    first = lines[0]
    skills = sorted({f[A["Libellé savoir-faire"]] for f in lines if f[A["Libellé savoir-faire"]]})
    activities = sorted({tuple(sorted(_activity(f).items())) for f in lines})
    return {
        "id_type": first[A["Type d'identifiant PP"]],
        "identifier": first[A["Identifiant PP"]],
        "civility": first[A["Libellé civilité d'exercice"]],
        "last_name": first[A["Nom d'exercice"]].strip(),
        "first_name": first[A["Prénom d'exercice"]].strip(),
        "profession_code": first[A["Code profession"]],
        "profession": first[A["Libellé profession"]],
        "category": first[A["Libellé catégorie professionnelle"]],
        "skills": skills,
        "activities": [dict(a) for a in activities],
    }


def _parse_mssante(f: Fields) -> tuple[str, Fields] | None:
    national = f[M["Identification nationale PP"]]
    if not national:
        return None  # an organisational mailbox (no person): not a directory entry's
    address = f[M["Adresse BAL"]]
    if not MAILBOX_RE.match(address):
        raise LineError(f"adresse de messagerie invalide « {address[:60]} »")
    if not NATIONAL_RE.match(national):
        raise LineError(f"identification nationale invalide « {national[:20]} »")
    return national, [f[M["Type de BAL"]], address.lower()]


def _build_mssante(national: str, lines: list[Fields]) -> dict[str, Any]:
    return {"mailboxes": sorted({(a, t) for t, a in lines})}


ACTIVITE = ExtractFormat(
    "activite",
    "personne / activité",
    ACTIVITE_COLUMNS,
    DirectoryRecord,
    _parse_activite,
    _build_activite,
    entry_columns,
)
MSSANTE = ExtractFormat(
    "mssante",
    "adresses MSSanté",
    MSSANTE_COLUMNS,
    DirectoryMailboxes,
    _parse_mssante,
    _build_mssante,
    lambda national, data: {},
)
FORMATS = (ACTIVITE, MSSANTE)


# -- reading the file ------------------------------------------------------------------


@dataclass
class Source:
    name: str
    size: int  # bytes of text, for the progress bar
    opener: Callable[[], IO[bytes]]


def open_source(path: Path) -> Source:
    """The text of the extract: the file itself, or the one extract inside a zip."""
    if not path.is_file():
        raise DirectoryFileError(f"fichier introuvable : {path}")
    if zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DirectoryFileError(f"archive zip illisible : {exc}") from exc
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".txt")]
        wanted = [
            m
            for m in members
            if "personne_activite" in m.filename.lower()
            or "correspondance_mssante" in m.filename.lower()
        ]
        chosen = wanted if wanted else members
        if len(chosen) != 1:
            names = ", ".join(m.filename for m in archive.infolist()) or "aucun fichier"
            raise DirectoryFileError(
                f"l'archive doit contenir un seul extrait .txt de l'annuaire (trouvé : {names})"
            )
        member = chosen[0]
        return Source(member.filename, member.file_size, lambda: archive.open(member))
    return Source(path.name, path.stat().st_size, lambda: path.open("rb"))


def detect_format(header: bytes) -> ExtractFormat:
    try:
        text = header.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DirectoryFileError("en-tête illisible : le fichier n'est pas en UTF-8") from exc
    if not text:
        raise DirectoryFileError("fichier vide : l'en-tête de l'extrait est attendu")
    names = text.split("|")
    if names and names[-1] == "":
        names = names[:-1]
    for fmt in FORMATS:
        if names == fmt.columns:
            return fmt
    for fmt in FORMATS:
        if names[:3] == fmt.columns[:3]:
            missing = [c for c in fmt.columns if c not in names]
            detail = f" ; colonnes absentes : {', '.join(missing[:5])}" if missing else ""
            raise DirectoryFileError(
                f"en-tête de l'extrait « {fmt.label} » inattendu : {len(names)} colonnes au "
                f"lieu de {len(fmt.columns)}{detail}"
            )
    raise DirectoryFileError(
        "ce fichier n'est pas un extrait de l'annuaire santé reconnu "
        "(PS_LibreAcces_Personne_activite ou Extraction_Correspondance_MSSante)"
    )


def split_line(raw: bytes, width: int) -> Fields:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"encodage invalide (UTF-8 attendu, octet {exc.start + 1})") from exc
    text = text.rstrip("\r\n")
    if not text.endswith("|"):
        raise LineError("la ligne ne se termine pas par « | »")
    fields = text[:-1].split("|")
    if len(fields) != width:
        raise LineError(f"{len(fields)} champs au lieu de {width}")
    return [f.strip() for f in fields]


# -- the report ------------------------------------------------------------------------


@dataclass
class ImportReport:
    import_id: int
    kind: str
    label: str
    file_name: str
    lines: int = 0
    records: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    held: int = 0  # records not updated because one of their lines was rejected
    skipped: int = 0  # lines without a person (organisational mailboxes)
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line_no: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_KEPT:
            self.rejections.append((line_no, reason))

    def french(self) -> list[str]:
        lines = [
            f"Import de l'annuaire ({self.label}) : {self.file_name} (import n° {self.import_id})",
            f"  lignes lues : {self.lines} ; professionnels dans le fichier : {self.records}",
            f"  ajoutés : {self.added}",
            f"  modifiés : {self.changed}",
            f"  retirés (plus listés, historique conservé) : {self.removed}",
            f"  inchangés : {self.unchanged}",
            f"  lignes rejetées : {self.rejected}",
        ]
        lines += [f"    ligne {n} : {reason}" for n, reason in self.rejections]
        if self.rejected > len(self.rejections):
            lines.append(f"    … et {self.rejected - len(self.rejections)} autres")
        if self.held:
            lines.append(
                f"  professionnels laissés en l'état à cause d'une ligne rejetée : {self.held}"
            )
        if self.skipped:
            lines.append(
                f"  boîtes organisationnelles (sans professionnel) ignorées : {self.skipped}"
            )
        return lines


# -- the run ---------------------------------------------------------------------------


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def _digest(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_shrink(conn: Connection, fmt: ExtractFormat, report: ImportReport) -> None:
    """Refuse a file much smaller than the last finished import of its kind."""
    last = conn.execute(
        select(DirectoryImport.lines, DirectoryImport.file_name)
        .where(
            DirectoryImport.kind == fmt.kind,
            DirectoryImport.finished_at.is_not(None),
            DirectoryImport.id != report.import_id,
        )
        .order_by(DirectoryImport.id.desc())
        .limit(1)
    ).first()
    if last is None or not last.lines or report.lines >= last.lines * (1 - MAX_SHRINK):
        return
    fewer = round(100 * (1 - report.lines / last.lines))
    raise DirectoryFileError(
        f"{report.lines} lignes, {fewer} % de moins que l'import précédent "
        f"({last.lines} lignes, {last.file_name}) : extrait tronqué ? "
        "Relancez avec --force s'il est complet."
    )


def import_extract(
    engine: Engine,
    path: Path,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> ImportReport:
    """Import one extract file (kind told by its header); see the module's docstring.
    A file much smaller than the last import of its kind is refused unless ``force``."""
    source = open_source(path)
    with source.opener() as stream:
        header = stream.readline()
    fmt = detect_format(header)
    with engine.begin() as conn:
        import_id = conn.scalar(
            insert(DirectoryImport)
            .values(
                kind=fmt.kind,
                file_name=source.name[:255],
                sha256="",
                started_at=utcnow(),
                lines=0,
                added=0,
                changed=0,
                removed=0,
                rejected=0,
                rejections=[],
            )
            .returning(DirectoryImport.id)
        )
        assert import_id is not None
        report = ImportReport(int(import_id), fmt.kind, fmt.label, source.name)
        sha = _stage(conn, fmt, source, report, progress)
        if not force:
            _check_shrink(conn, fmt, report)  # raised: the whole run is rolled back
        if conn.dialect.name == "postgresql":  # the planner must know the staged volume
            conn.execute(text("ANALYZE directory_staging"))
        _apply(conn, fmt, report)
        conn.execute(delete(DirectoryStaging).where(DirectoryStaging.import_id == import_id))
        if conn.dialect.name == "postgresql":  # and the imported one, to plan the searches
            if fmt.table.name == DirectoryRecord.__tablename__:
                _keep_words(conn, import_id)
            conn.execute(text(f"ANALYZE {fmt.table.name}"))
        conn.execute(
            update(DirectoryImport)
            .where(DirectoryImport.id == import_id)
            .values(
                sha256=sha,
                finished_at=utcnow(),
                lines=report.lines,
                added=report.added,
                changed=report.changed,
                removed=report.removed,
                rejected=report.rejected,
                rejections=[list(r) for r in report.rejections[:200]],
            )
        )
    if engine.dialect.name == "postgresql":
        # After the import's transaction, before the first searches (autovacuum would,
        # minutes later): the pages it wrote marked visible to all, so that the name
        # indexes are read without the table (index-only), and the full-text index's
        # pending entries merged into it (seconds at 2 million entries).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM {fmt.table.name}"))
    return report


def _keep_words(conn: Connection, import_id: int) -> None:
    """The words of the entries this import wrote, added to those a search expands
    prefixes into (``DirectoryWord``)."""
    conn.execute(
        text(
            "INSERT INTO directory_words (word) SELECT DISTINCT "
            "unnest(tsvector_to_array(search_vector)) FROM directory_entries "
            "WHERE changed_import_id = :import_id ON CONFLICT DO NOTHING"
        ),
        {"import_id": import_id},
    )


def _stage(
    conn: Connection,
    fmt: ExtractFormat,
    source: Source,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> str:
    sha = hashlib.sha256()
    width = len(fmt.columns)
    batch: list[dict[str, Any]] = []
    id_fields = (
        (None, A["Identification nationale PP"])
        if fmt is ACTIVITE
        else (None, M["Identification nationale PP"])
    )
    with source.opener() as stream:
        for line_no, raw in enumerate(_lines(stream), start=1):
            sha.update(raw)
            if progress is not None:
                progress(len(raw))
            if line_no == 1:
                continue  # the header, checked already
            if not raw.strip():
                continue
            report.lines += 1
            try:
                fields = split_line(raw, width)
                parsed = fmt.parse(fields)
            except LineError as exc:
                report.reject(line_no, str(exc))
                national = _guess_national(raw, id_fields)
                if national is not None:  # its professional stays as it was
                    batch.append(
                        {
                            "import_id": report.import_id,
                            "national_id": national,
                            "line_no": line_no,
                            "fields": None,
                        }
                    )
            else:
                if parsed is None:
                    report.skipped += 1
                else:
                    batch.append(
                        {
                            "import_id": report.import_id,
                            "national_id": parsed[0],
                            "line_no": line_no,
                            "fields": SEP.join(parsed[1]),
                        }
                    )
            if len(batch) >= BATCH:
                _bulk_insert(conn, _table(DirectoryStaging), batch)
                batch = []
    if batch:
        _bulk_insert(conn, _table(DirectoryStaging), batch)
    return sha.hexdigest()


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert these rows (all with the same keys): by ``COPY`` on PostgreSQL (a few times
    faster than row-by-row inserts for the millions of lines of the national extract),
    else one ``executemany``."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    names = list(rows[0])
    json_columns = {n for n in names if isinstance(table.c[n].type, JSON)}
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = ", ".join(f'"{n}"' for n in names)
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    _json(row[n]) if n in json_columns and row[n] is not None else row[n]
                    for n in names
                ]
            )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _guess_national(raw: bytes, id_fields: tuple[int | None, int]) -> str | None:
    """The national id of a rejected line, when its identification fields (at the start of
    the line, before the text fields) are intact."""
    fields = raw.decode("utf-8", "replace").split("|")
    if len(fields) <= id_fields[1]:
        return None
    national = fields[id_fields[1]].strip()
    return national if NATIONAL_RE.match(national) else None


def _groups(conn: Connection, import_id: int) -> Iterator[list[tuple[str, list[Fields | None]]]]:
    """The staged lines, per national id, in key order, a batch at a time (keyset pages
    along the staging index; a page's last key may be cut, so it starts the next page)."""
    staged = _table(DirectoryStaging)
    lines = select(staged.c.national_id, staged.c.fields).order_by(
        staged.c.national_id, staged.c.line_no
    )
    last = ""
    while True:
        rows = conn.execute(
            lines.where(staged.c.import_id == import_id, staged.c.national_id > last).limit(BATCH)
        ).all()
        if not rows:
            return
        if len(rows) == BATCH:
            cut = rows[-1][0]
            whole = [r for r in rows if r[0] != cut]
            if not whole:  # one professional with a whole page of lines
                whole = list(
                    conn.execute(
                        lines.where(staged.c.import_id == import_id, staged.c.national_id == cut)
                    ).all()
                )
            rows = whole
        grouped: dict[str, list[Fields | None]] = {}
        for national, fields in rows:
            grouped.setdefault(national, []).append(None if fields is None else fields.split(SEP))
        yield list(grouped.items())
        last = rows[-1][0]


def _apply(conn: Connection, fmt: ExtractFormat, report: ImportReport) -> None:
    table = fmt.table
    changes = _table(DirectoryChange)
    for batch in _groups(conn, report.import_id):
        keys = [k for k, _ in batch]
        current = {
            row.national_id: row
            for row in conn.execute(
                select(
                    table.c.id,
                    table.c.national_id,
                    table.c.content_hash,
                    table.c.listed,
                ).where(table.c.national_id.in_(keys))
            )
        }
        new_rows: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for national, lines in batch:
            report.records += 1
            if any(fields is None for fields in lines):
                report.held += 1
                continue
            data = fmt.build(national, [f for f in lines if f is not None])
            digest = _digest(data)
            row = current.get(national)
            if row is not None and row.content_hash == digest and row.listed:
                report.unchanged += 1
                continue
            values = {"data": data, "content_hash": digest, **fmt.columns_of(national, data)}
            if row is None:
                new_rows.append(
                    {
                        "national_id": national,
                        "listed": True,
                        "first_import_id": report.import_id,
                        "changed_import_id": report.import_id,
                        **values,
                    }
                )
                history.append(_change(report, fmt, national, "added", None))
                report.added += 1
            else:
                previous = conn.scalar(select(table.c.data).where(table.c.id == row.id))
                conn.execute(
                    update(table)
                    .where(table.c.id == row.id)
                    .values(listed=True, changed_import_id=report.import_id, **values)
                )
                what = "changed" if row.content_hash != digest else "relisted"
                history.append(_change(report, fmt, national, what, previous))
                report.changed += 1
        _bulk_insert(conn, table, new_rows)
        _bulk_insert(conn, changes, history)
    # Absent from this file: no longer listed (kept, with their history).
    staged = _table(DirectoryStaging)
    absent = and_(
        table.c.listed.is_(True),
        ~exists().where(
            staged.c.import_id == report.import_id, staged.c.national_id == table.c.national_id
        ),
    )
    report.removed = conn.scalar(select(func.count()).select_from(table).where(absent)) or 0
    conn.execute(
        insert(changes).from_select(
            ["import_id", "kind", "national_id", "change", "previous"],
            select(
                literal(report.import_id, Integer),
                literal(fmt.kind, String),
                table.c.national_id,
                literal("removed", String),
                table.c.data,
            ).where(absent),
        )
    )
    conn.execute(
        update(table).where(absent).values(listed=False, changed_import_id=report.import_id)
    )


def _change(
    report: ImportReport, fmt: ExtractFormat, national: str, what: str, previous: Any
) -> dict[str, Any]:
    return {
        "import_id": report.import_id,
        "kind": fmt.kind,
        "national_id": national,
        "change": what,
        "previous": previous,
    }
