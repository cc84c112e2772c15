"""How the sender of an incoming mail was authenticated, recorded with the mail and shown
in the room: a client certificate verified against the configured CA (the MSSanté
operator's server), else SPF / DKIM / DMARC checked with ``authheaders`` (dkimpy, pyspf),
else nothing — said as such (« ⚠ expéditeur non authentifié »).

DNS: the process's resolver (``dnspython``); ``mail.inbound.dns_servers`` points it at
chosen servers (a local resolver, or a test's own DNS server).
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import threading
from dataclasses import dataclass
from typing import Any

import dns.resolver
from authheaders import check_dkim, check_spf
from authheaders.dmarc_lookup import lookup_receiver_record
from publicsuffix2 import PublicSuffixList

from dossier_api.domain.mail.routing import split_address

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    """The SMTP client: address, HELO name, and the subject of its verified certificate."""

    ip: str
    helo: str = ""
    certificate: str | None = None


def configure_resolver(servers: tuple[str, ...]) -> None:
    """Send this process's DNS queries (SPF, DKIM, DMARC) to ``host[:port]`` servers (or
    the system's), through a cache: a sender's records are asked once per TTL (negative
    answers too), not at each of its mails."""
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        hosts: list[str] = []
        port = 53
        for server in servers:
            host, _, port_text = (
                server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            )
            hosts.append(host)
            if port_text:
                port = int(port_text)
        resolver.nameservers = hosts
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            return  # no system resolver: every lookup fails, the mail is "not authenticated"
    resolver.lifetime = 5.0
    resolver.cache = dns.resolver.LRUCache(4096)
    dns.resolver.default_resolver = resolver


def certificate_subject(peercert: dict[str, Any] | None) -> str | None:
    """A verified certificate's name (first DNS subjectAltName, else its CN)."""
    if not peercert:
        return None
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "certificat sans nom"


_SUFFIXES: list[PublicSuffixList] = []
_SUFFIXES_LOCK = threading.Lock()


def _suffix_list() -> PublicSuffixList:
    """The public suffix list shipped with ``authheaders``, built once per process
    (``authheaders.dmarc_lookup.get_org_domain`` reads and builds it at every call: some
    40 ms of CPU holding the GIL, which was most of the SMTP intake's cost)."""
    with _SUFFIXES_LOCK:  # the intake threads: build it once, not once each
        if not _SUFFIXES:
            ref = importlib.resources.files("authheaders") / "public_suffix_list.txt"
            with ref.open(encoding="utf-8") as lines:
                _SUFFIXES.append(PublicSuffixList(lines))
        return _SUFFIXES[0]


@functools.lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """The organizational domain (RFC 7489 3.2) of a domain: its registrable part."""
    domain = domain.lower().rstrip(".")
    return str(_suffix_list().get_sld(domain) or domain)


def _aligned(domain: str, from_domain: str, mode: str = "r") -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): same domain (strict) or same
    organizational domain (relaxed, from the public suffix list)."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not domain or not from_domain:
        return False
    if mode == "s":
        return domain == from_domain
    return org_domain(domain) == org_domain(from_domain)


def _dmarc(from_domain: str, spf: tuple[str, str], dkim: tuple[str, str]) -> str:
    """The DMARC result of the From domain. (``authheaders.check_dmarc`` reads domains
    with a regex that stops at the first hyphen — ``chu-exemple.mssante.fr`` becomes
    ``chu`` —, so the record is fetched with its lookup and aligned here.)"""
    record = lookup_receiver_record(from_domain)
    if not record and org_domain(from_domain) != from_domain.lower().rstrip("."):
        record = lookup_receiver_record(org_domain(from_domain))
    if not record:
        return "none"
    passed = (spf[0] == "pass" and _aligned(spf[1], from_domain, record.get("aspf", "r"))) or (
        dkim[0] == "pass" and _aligned(dkim[1], from_domain, record.get("adkim", "r"))
    )
    return "pass" if passed else "fail"


def authenticate(
    raw: bytes, from_address: str, peer: Peer | None, envelope_from: str | None
) -> dict[str, Any]:
    """The record of how this mail's sender was authenticated (stored, sealed, with it)."""
    from_domain = split_address(from_address)[1]
    if peer is not None and peer.certificate:
        return {"method": "certificate", "name": peer.certificate, "domain": from_domain}
    results: dict[str, Any] = {"method": "none", "domain": from_domain}
    spf_domain = split_address(envelope_from or "")[1]
    dkim_domain = ""
    try:
        if peer is not None and envelope_from:
            spf_result = check_spf(peer.ip, envelope_from, peer.helo or from_domain)
            results["spf"] = spf_result.result or "none"
        if b"dkim-signature:" in raw.partition(b"\r\n\r\n")[0].lower() or (
            b"dkim-signature:" in raw.partition(b"\n\n")[0].lower()
        ):
            dkim_result = check_dkim(raw)
            results["dkim"] = dkim_result.result or "none"
            dkim_domain = getattr(dkim_result, "header_d", "") or ""
        else:
            results["dkim"] = "none"
        results["dmarc"] = _dmarc(
            from_domain,
            (results.get("spf", "none"), spf_domain),
            (results["dkim"], dkim_domain),
        )
    except Exception as exc:  # DNS trouble or a broken signature: not authenticated
        log.info("sender authentication could not complete: %s", type(exc).__name__)
        results.setdefault("dkim", "temperror")
        return results
    if results["dkim"] == "pass" and _aligned(dkim_domain, from_domain):
        results.update(method="dkim", name=dkim_domain)
    elif results.get("spf") == "pass" and results["dmarc"] == "pass":
        results.update(method="spf", name=spf_domain)
    return results


def describe(auth: dict[str, Any] | None) -> str:
    """The line shown in the room (French)."""
    if not auth:
        return "⚠ expéditeur non authentifié"
    method, name = auth.get("method"), auth.get("name", "")
    if method == "certificate":
        return f"🔒 expéditeur authentifié par certificat ({name})"
    if method == "dkim":
        return f"🔒 DKIM valide pour {name}"
    if method == "spf":
        return f"🔒 SPF et DMARC valides pour {name}"
    checks = ", ".join(
        f"{key.upper()} : {auth[key]}" for key in ("spf", "dkim", "dmarc") if key in auth
    )
    return "⚠ expéditeur non authentifié" + (f" ({checks})" if checks else "")
