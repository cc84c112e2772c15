"""Charts of the dashboards, drawn server-side by matplotlib as SVG (served by the dossier
service as an image: nothing from another origin, no script). Each chart's data is also
on the page as a table, for the readers who do not see it."""

from __future__ import annotations

import functools
import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dossier_api.domain.indicators import SMALL_CELL, Indicators


def _shown(value: int, outside: bool) -> float:
    """A count as drawn: small cells leaving the structure are not drawn (as in the table)."""
    return 0.0 if outside and 0 < value < SMALL_CELL else float(value)


def months_chart(figures: Indicators, lang: str, outside: bool) -> bytes:
    """Dossiers opened and closed (bars) and active (line) per month, as SVG."""
    points = tuple(
        (
            f"{m.month:%m/%Y}",
            _shown(m.opened, outside),
            _shown(m.closed, outside),
            _shown(m.active, outside),
        )
        for m in figures.months
    )
    return _draw(points, lang)


def solicitations_chart(figures: Indicators, lang: str, outside: bool) -> bytes:
    """Resource-team solicitations sent and accepted (bars) per month, as SVG."""
    points = tuple(
        (
            f"{m.month:%m/%Y}",
            _shown(m.solicitations, outside),
            _shown(m.solicitations_accepted, outside),
            None,
        )
        for m in figures.months
    )
    english = lang == "en"
    return _draw(points, lang, ("sent", "accepted") if english else ("envoyées", "acceptées"))


@functools.lru_cache(maxsize=256)
def _draw(
    points: tuple[tuple[str, float, float, float | None], ...],
    lang: str,
    bars: tuple[str, str] | None = None,
) -> bytes:
    """The chart of these figures (drawn once for the same figures: a dashboard read again
    serves the same SVG)."""
    labels = [p[0] for p in points]
    x = list(range(len(points)))
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "maillon"}):
        figure = Figure(figsize=(8, 3.6), dpi=100)
        axes = figure.add_subplot()
        width = 0.4
        english = lang == "en"
        first, second = bars or (("opened", "closed") if english else ("ouverts", "clos"))
        axes.bar(
            [i - width / 2 for i in x],
            [p[1] for p in points],
            width,
            label=first,
            color="#1f5f8b",
        )
        axes.bar(
            [i + width / 2 for i in x],
            [p[2] for p in points],
            width,
            label=second,
            color="#b85c00",
        )
        if bars is None:
            axes.plot(
                x,
                [p[3] or 0.0 for p in points],
                marker="o",
                label="active" if english else "actifs",
                color="#2e7d32",
            )
        axes.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize=8, frameon=False)
        axes.spines[["top", "right"]].set_visible(False)
        figure.subplots_adjust(left=0.07, right=0.99, top=0.95, bottom=0.22)
        out = io.BytesIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
