"""Read an incoming mail: headers that matter, text, sanitized HTML, attachments.

Anything we cannot read as MIME is refused (:class:`MalformedMail`) before it is stored.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from appservice.mail.sanitize import html_to_text, sanitize_html

MESSAGE_ID_RE = re.compile(r"<[^<>\s]+>")
# RFC 3464 Status (class.subject.detail) and a plain address: the only parts of a delivery
# report we repeat (never its free text, which anyone may write).
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
REPORT_ADDRESS_RE = re.compile(r"^[^@\s<>\"'`;,()\[\]]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
MAX_PARTS = 200


class MalformedMail(ValueError):
    """The mail is not MIME we can read; the message says why (safe to show the sender)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMail:
    from_address: str
    from_name: str
    reply_to: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    auto_submitted: str
    text: str
    html: str | None  # sanitized
    attachments: tuple[Attachment, ...] = ()
    relay_marker: str | None = None
    # Delivery status notification about one of our mails: its Message-ID and diagnostic.
    report_for: str | None = None
    report_text: str = ""
    # Validated Status codes and Final-Recipient addresses of the report.
    report_status: tuple[str, ...] = ()
    report_recipients: tuple[str, ...] = ()
    headers_date: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_automatic(self) -> bool:
        return self.auto_submitted.lower() not in ("", "no")

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, nearest first (In-Reply-To, then References)."""
        seen: list[str] = []
        for mid in (*self.in_reply_to, *reversed(self.references)):
            if mid not in seen:
                seen.append(mid)
        return tuple(seen)


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(MESSAGE_ID_RE.findall(value or ""))


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


def _decode_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _filename(part: Message, index: int) -> str:
    name = part.get_filename() or f"piece-jointe-{index}"
    name = name.replace("/", "_").replace("\\", "_").strip() or f"piece-jointe-{index}"
    return name[:200]


def _report(msg: Message) -> tuple[str | None, str, tuple[str, ...], tuple[str, ...]]:
    """(original Message-ID, diagnostic, statuses, final recipients) of a delivery status
    notification (RFC 3464); statuses and recipients only when well-formed."""
    original: str | None = None
    diagnostic: list[str] = []
    statuses: list[str] = []
    recipients: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload() if part.is_multipart() else []:
                assert isinstance(block, Message)
                for key in ("Action", "Status", "Diagnostic-Code"):
                    if block.get(key):
                        diagnostic.append(f"{key}: {_header(block, key)}")
                status = _header(block, "Status").split(" ")[0]
                if STATUS_RE.match(status) and status not in statuses:
                    statuses.append(status)
                final = _header(block, "Final-Recipient").partition(";")[2].strip()
                if REPORT_ADDRESS_RE.match(final) and final not in recipients:
                    recipients.append(final)
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            inner: Message | None = None
            if part.is_multipart():
                first = part.get_payload(0)
                inner = first if isinstance(first, Message) else None
            else:
                raw = part.get_payload(decode=True)
                if isinstance(raw, bytes):
                    inner = email.message_from_bytes(raw, policy=email.policy.compat32)
            if inner is not None and original is None:
                ids = _ids(inner.get("Message-ID"))
                original = ids[0] if ids else None
    return original, "\n".join(diagnostic), tuple(statuses[:5]), tuple(recipients[:5])


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse a whole mail (headers and body). Raise :class:`MalformedMail`."""
    if not raw.strip():
        raise MalformedMail("message vide / empty message")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; anything raised here is fatal
        raise MalformedMail("MIME illisible / unreadable MIME") from exc
    assert isinstance(msg, EmailMessage)
    defects = list(msg.defects)
    if not msg.keys():
        raise MalformedMail("aucun en-tête / no header")
    if msg.get("From") is None:
        raise MalformedMail("en-tête From absent / missing From header")
    try:
        from_name, from_address = parseaddr(str(msg.get("From", "")))
        _reply_name, reply_to = parseaddr(str(msg.get("Reply-To", "") or ""))
        to = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("To", [])]) if a)
        cc = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("Cc", [])]) if a)
        subject = _header(msg, "Subject")
    except Exception as exc:  # header parsing errors of the modern policy
        raise MalformedMail("en-têtes illisibles / unreadable headers") from exc
    if "@" not in from_address:
        raise MalformedMail("adresse From invalide / invalid From address")
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    report_for: str | None = None
    report_text = ""
    report_status: tuple[str, ...] = ()
    report_recipients: tuple[str, ...] = ()
    try:
        parts = list(msg.walk())
        if len(parts) > MAX_PARTS:
            raise MalformedMail("trop de parties MIME / too many MIME parts")
        for part in parts:
            defects.extend(part.defects)
            if part.is_multipart():
                if part.get_content_maintype() == "multipart" and not part.get_boundary():
                    raise MalformedMail("multipart sans frontière / multipart without boundary")
                continue
            ctype = part.get_content_type()
            disposition = part.get_content_disposition()
            if ctype.startswith("message/") or ctype == "text/rfc822-headers":
                continue
            if disposition == "attachment" or part.get_filename() or not ctype.startswith("text/"):
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    attachments.append(
                        Attachment(_filename(part, len(attachments) + 1), ctype, payload)
                    )
                continue
            if ctype == "text/html":
                html_parts.append(_decode_text(part))
            elif ctype == "text/plain":
                text_parts.append(_decode_text(part))
        if msg.get_content_type() == "multipart/report":
            report_for, report_text, report_status, report_recipients = _report(msg)
    except MalformedMail:
        raise
    except Exception as exc:
        raise MalformedMail("structure MIME invalide / invalid MIME structure") from exc
    fatal = [d for d in defects if type(d).__name__ in _FATAL_DEFECTS]
    if fatal:
        raise MalformedMail(f"MIME invalide / invalid MIME ({type(fatal[0]).__name__})")
    html = sanitize_html("\n".join(html_parts)) if html_parts else None
    text = "\n".join(t.strip("\n") for t in text_parts).strip()
    if not text and html_parts:
        text = html_to_text(html or "")
    message_ids = _ids(msg.get("Message-ID"))
    return ParsedMail(
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to or from_address,
        to=to,
        cc=cc,
        subject=subject,
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_ids(msg.get("In-Reply-To")),
        references=_ids(msg.get("References")),
        auto_submitted=_header(msg, "Auto-Submitted").split(";")[0].strip(),
        text=text,
        html=html,
        attachments=tuple(attachments),
        relay_marker=_header(msg, "X-Maillon-Relay") or None,
        report_for=report_for,
        report_text=report_text,
        report_status=report_status,
        report_recipients=report_recipients,
        headers_date=_header(msg, "Date") or None,
    )


_FATAL_DEFECTS = {
    "NoBoundaryInMultipartDefect",
    "StartBoundaryNotFoundDefect",
    "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect",
    "InvalidBase64CharactersDefect",
    "InvalidBase64PaddingDefect",
    "InvalidBase64LengthDefect",
    "MissingHeaderBodySeparatorDefect",
}
