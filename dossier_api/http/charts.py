"""Charts of the dashboards, drawn server-side by matplotlib as SVG (served by the dossier
service as an image: nothing from another origin, no script). Each chart's data is also
on the page as a table, for the readers who do not see it."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dossier_api.domain.indicators import SMALL_CELL, Indicators


def _shown(value: int, outside: bool) -> float:
    """A count as drawn: small cells leaving the structure are not drawn (as in the table)."""
    return 0.0 if outside and 0 < value < SMALL_CELL else float(value)


def months_chart(figures: Indicators, lang: str, outside: bool) -> bytes:
    """Dossiers opened and closed (bars) and active (line) per month, as SVG."""
    labels = [f"{m.month:%m/%Y}" for m in figures.months]
    x = list(range(len(labels)))
    figure = Figure(figsize=(8, 3.6), dpi=100)
    axes = figure.add_subplot()
    width = 0.4
    opened = [_shown(m.opened, outside) for m in figures.months]
    closed = [_shown(m.closed, outside) for m in figures.months]
    active = [_shown(m.active, outside) for m in figures.months]
    axes.bar(
        [i - width / 2 for i in x],
        opened,
        width,
        label="ouverts" if lang == "fr" else "opened",
        color="#1f5f8b",
    )
    axes.bar(
        [i + width / 2 for i in x],
        closed,
        width,
        label="clos" if lang == "fr" else "closed",
        color="#b85c00",
    )
    axes.plot(x, active, marker="o", label="actifs" if lang == "fr" else "active", color="#2e7d32")
    axes.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
