"""The pieces of a report: sections, rendered figures (SVG text + files), and SVG made safe to inline."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.tables.table import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = ["RenderedFigure", "Section", "inline_svg", "render_figure"]

_SVG_RC: dict[RcKeyType, Any] = {"svg.fonttype": "path", "svg.hashsalt": "decode-regimes", "svg.image_inline": True}
_ID = re.compile(r'\bid="([^"]+)"')


@dataclass(frozen=True)
class RenderedFigure:
    """A figure written to disk (paths relative to the report folder) and its SVG text for inlining."""

    name: str
    caption: str
    svg: str
    png_path: str
    svg_path: str


@dataclass
class Section:
    """One section of the report: the question, the result's summary, tables and figures, or why it is missing."""

    key: str
    title: str
    intro: str = ""
    summary: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[RenderedFigure] = field(default_factory=list)
    unavailable: str = ""
    notes: list[str] = field(default_factory=list)


def render_figure(fig: Figure, name: str, caption: str, out_dir: Path, *, dpi: int = 110) -> RenderedFigure:
    """Save ``fig`` as ``figures/NAME.svg`` and ``figures/NAME.png`` under ``out_dir``; keep the SVG text.

    Each file is written whole or not at all (:func:`collector.dataset.storage.write_atomic`);
    a failed write raises :class:`~collector.shared.errors.OutputError` naming the file.
    """
    import matplotlib

    from collector.dataset.storage import write_atomic, write_error

    figures = out_dir / "figures"
    try:
        figures.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(figures, exc, "report folder") from None
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    fig.set_layout_engine("none")  # laid out by the first save; the second reuses it (a third faster)
    buf = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    write_atomic(figures / f"{name}.png", png.getvalue(), "figure")  # whole or not at all (a full disk: named)
    write_atomic(figures / f"{name}.svg", svg, "figure")
    return RenderedFigure(name, caption, svg, f"figures/{name}.png", f"figures/{name}.svg")


def inline_svg(svg: str, prefix: str) -> str:
    """The ``<svg>`` element of a matplotlib SVG file, its ids prefixed so that several can share one page."""
    start = svg.find("<svg")
    body = svg[start:] if start >= 0 else svg
    ids = set(_ID.findall(body))
    if not ids:
        return body

    def sub(m: re.Match[str]) -> str:
        lead, ident = m.group(1), m.group(2)
        return f"{lead}{prefix}-{ident}" if ident in ids else m.group(0)

    return re.sub(r'(\bid="|url\(#|href="#)([^")]+)', sub, body)
