"""HTML of incoming mails, made safe for a Matrix ``formatted_body``: no script, no style,
no remote image, no event handler; links keep only safe schemes."""

from __future__ import annotations

import html
import re

import nh3

# Tags of the Matrix spec's recommended formatted_body subset (minus img: mails' images are
# either remote — trackers — or inline parts, which are posted as attachments).
TAGS = {
    "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
    "sup", "sub", "li", "b", "i", "u", "strong", "em", "strike", "code", "hr", "br", "div",
    "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "s",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "font": {"color"},
    "span": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
}
URL_SCHEMES = {"https", "http", "mailto"}
_TAG_RE = re.compile(r"<[^>]*>")
_BLOCK_RE = re.compile(r"</?(p|div|br|li|tr|h[1-6]|blockquote|pre|table)\b[^>]*>", re.I)


def sanitize_html(source: str) -> str:
    return nh3.clean(
        source,
        tags=TAGS,
        clean_content_tags={"script", "style", "head", "title"},
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def html_to_text(source: str) -> str:
    """A readable plain-text fallback of (already sanitized) HTML."""
    text = _BLOCK_RE.sub("\n", source)
    text = html.unescape(_TAG_RE.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()
