"""Message-sequence diagrams as standalone SVG: a lifeline per actor, an arrow per message.

Two entry points share one renderer:

* ``sequence_svg(actors, events)`` draws a trace given as ``(time, from, to, label)`` tuples,
  one row per event in the order given (time is printed in the left margin when it changes).
  ``pypaxos synod --svg`` uses it.
* ``render_diagram(actors, arrows, marks)`` draws richer records: an ``Arrow`` leaves its sender
  at row ``sent`` and reaches its receiver at row ``received`` (so a message that waited in
  flight slants), and may have been lost or dropped; a ``Mark`` annotates one lifeline
  (propose, crash, restart, timer, decide).  The explorer page uses it with one row per step.

The output is plain SVG 1.1 with inline styles: no script, no external font or stylesheet, so
it opens in any browser or image viewer and can be embedded in HTML as is.  Colours follow the
message kind, the same palette as the explorer page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

# One colour per message kind (and one for anything else).
KIND_COLOURS: dict[str, str] = {
    "Prepare": "#2563eb",
    "Promise": "#0891b2",
    "Accept": "#d97706",
    "Accepted": "#16a34a",
    "Nack": "#dc2626",
    "Query": "#7c3aed",
    "Decided": "#db2777",
}
OTHER_COLOUR = "#475569"
ROLE_COLOURS: dict[str, str] = {"P": "#1e40af", "A": "#92400e", "L": "#166534"}
MARK_COLOURS: dict[str, str] = {
    "propose": "#1e40af",
    "decide": "#15803d",
    "crash": "#dc2626",
    "restart": "#0f766e",
    "timer": "#7c3aed",
}

COLUMN_PX = 116
GUTTER_PX = 48
HEADER_PX = 52
ROW_PX = 30
MARGIN_PX = 16
RIGHT_PX = 56  # room for a mark's label right of the last lifeline
FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"

TraceEvent = tuple[float, str, str, str]
RowY = Callable[[float], float]  # row number -> y pixel


@dataclass(frozen=True, slots=True)
class Arrow:
    """A message: sent at row ``sent`` by ``sender``, reaching ``receiver`` at row ``received``.

    ``outcome`` is ``delivered``, ``lost`` (receiver down or partitioned), ``dropped`` (lost by
    the network on purpose) or ``pending`` (still in flight; drawn faint and dashed).
    """

    sent: float
    received: float
    sender: str
    receiver: str
    label: str
    kind: str = ""
    outcome: str = "delivered"


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened on one lifeline at row ``time`` (``kind`` picks the colour)."""

    time: float
    actor: str
    label: str
    kind: str = "note"


def kind_of(arrow: Arrow) -> str:
    return arrow.kind or (arrow.label.split() or [""])[0]


def colour_of(kind: str) -> str:
    return KIND_COLOURS.get(kind, OTHER_COLOUR)


def sequence_svg(
    actors: Sequence[str], events: Iterable[TraceEvent], title: str | None = None
) -> str:
    """Render a trace of ``(time, from_name, to_name, label)`` events, one row each."""
    arrows: list[Arrow] = []
    row_labels: dict[int, str] = {}
    previous: float | None = None
    for row, (time, sender, receiver, label) in enumerate(events, start=1):
        arrows.append(Arrow(row, row, sender, receiver, label))
        if time != previous:
            row_labels[row] = f"{time:g}"
            previous = time
    return render_diagram(actors, arrows, (), row_labels=row_labels, title=title, axis="time")


def render_diagram(
    actors: Sequence[str],
    arrows: Sequence[Arrow],
    marks: Sequence[Mark] = (),
    *,
    last_row: float | None = None,
    row_labels: Mapping[int, str] | None = None,
    title: str | None = None,
    axis: str = "step",
) -> str:
    """Render arrows and marks over one lifeline per actor, rows growing downwards."""
    names = list(actors)
    for arrow in arrows:
        for name in (arrow.sender, arrow.receiver):
            if name not in names:
                names.append(name)
    column = {name: GUTTER_PX + COLUMN_PX * i + COLUMN_PX // 2 for i, name in enumerate(names)}
    times = [a.sent for a in arrows] + [a.received for a in arrows] + [m.time for m in marks]
    rows = max([*times, last_row or 0, 1])
    top = HEADER_PX + (MARGIN_PX if title is None else MARGIN_PX + 22)
    width = GUTTER_PX + COLUMN_PX * max(len(names), 1) + RIGHT_PX
    height = int(top + (rows + 1) * ROW_PX + MARGIN_PX)

    def y(row: float) -> float:
        return top + row * ROW_PX

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)} font-size="11">',
        _markers(),
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title is not None:
        out.append(
            f'<text x="{MARGIN_PX}" y="{MARGIN_PX + 10}" font-size="14" font-weight="600" '
            f'fill="#0f172a">{escape(title)}</text>'
        )
    out.extend(_rows(rows, row_labels, y, width, axis))
    out.extend(_lifelines(names, column, marks, y(rows + 0.6), y))
    out.extend(_arrow(a, column, y) for a in arrows if a.outcome == "pending")
    out.extend(_arrow(a, column, y) for a in arrows if a.outcome != "pending")
    out.extend(_mark(m, column, y) for m in marks if m.actor in column)
    out.append(_heads(names, column, top - HEADER_PX + 4, width))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _markers() -> str:
    defs = ["<defs>"]
    for kind, colour in [*KIND_COLOURS.items(), ("other", OTHER_COLOUR)]:
        defs.append(
            f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>'
        )
    defs.append("</defs>")
    return "".join(defs)


def _rows(
    rows: float,
    labels: Mapping[int, str] | None,
    y: RowY,
    width: int,
    axis: str,
) -> list[str]:
    out = [
        f'<text x="{GUTTER_PX - 8}" y="{y(0) - 6:.1f}" text-anchor="end" fill="#94a3b8" '
        f'font-size="9">{escape(axis)}</text>'
    ]
    for row in range(1, int(rows) + 1):
        if row % 2 == 0:
            out.append(
                f'<rect x="{GUTTER_PX - 40}" y="{y(row) - ROW_PX / 2:.1f}" '
                f'width="{width - GUTTER_PX + 40 - MARGIN_PX / 2}" height="{ROW_PX}" '
                f'fill="#f8fafc"/>'
            )
        text = str(row) if labels is None else labels.get(row)
        if text is not None:
            out.append(
                f'<text x="{GUTTER_PX - 8}" y="{y(row) + 4:.1f}" text-anchor="end" '
                f'fill="#94a3b8" font-size="10">{escape(text)}</text>'
            )
    return out


def _lifelines(
    names: list[str],
    column: Mapping[str, int],
    marks: Sequence[Mark],
    bottom: float,
    y: RowY,
) -> list[str]:
    out: list[str] = []
    for name in names:
        x = column[name]
        out.append(
            f'<line x1="{x}" y1="{y(0)}" x2="{x}" y2="{bottom:.1f}" stroke="#cbd5e1" '
            f'stroke-width="1.5" stroke-dasharray="4 4"/>'
        )
        for start, end in _down_spans(name, marks, bottom, y):
            out.append(
                f'<rect x="{x - 4}" y="{start:.1f}" width="8" height="{max(end - start, 2):.1f}" '
                f'fill="#fecaca" stroke="#dc2626" stroke-width="0.8" rx="2"/>'
            )
    return out


def _heads(names: list[str], column: Mapping[str, int], header_y: float, width: int) -> str:
    """The actor name boxes, in one group drawn last (a page may keep it in view on scroll)."""
    out = [
        f'<g class="heads"><rect x="0" y="{header_y - 8}" width="{width}" height="44" '
        f'fill="#ffffff" opacity="0.94"/>'
    ]
    for name in names:
        x = column[name]
        colour = ROLE_COLOURS.get(name[:1], OTHER_COLOUR)
        out.append(
            f'<rect x="{x - 34}" y="{header_y}" width="68" height="28" rx="7" fill="{colour}"/>'
            f'<text x="{x}" y="{header_y + 19}" text-anchor="middle" fill="#ffffff" '
            f'font-size="13" font-weight="600">{escape(name)}</text>'
        )
    out.append("</g>")
    return "".join(out)


def _down_spans(
    name: str, marks: Sequence[Mark], bottom: float, y: RowY
) -> list[tuple[float, float]]:
    """Where ``name``'s lifeline is down: from each crash mark to the next restart mark."""
    spans: list[tuple[float, float]] = []
    down_since: float | None = None
    for mark in sorted((m for m in marks if m.actor == name), key=lambda m: m.time):
        if mark.kind == "crash" and down_since is None:
            down_since = y(mark.time)
        elif mark.kind == "restart" and down_since is not None:
            spans.append((down_since, y(mark.time)))
            down_since = None
    if down_since is not None:
        spans.append((down_since, bottom))
    return spans


def _arrow(arrow: Arrow, column: Mapping[str, int], y: RowY) -> str:
    kind = kind_of(arrow)
    colour = colour_of(kind)
    head = kind if kind in KIND_COLOURS else "other"
    x1, y1 = float(column[arrow.sender]), y(arrow.sent)
    x2, y2 = float(column[arrow.receiver]), y(arrow.received)
    if x1 == x2:  # a message to oneself: a small loop to the right
        path = f"M{x1},{y1} C{x1 + 40},{y1} {x1 + 40},{y2 + 10} {x1 + 4},{y2 + 10}"
        return (
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6" '
            f'marker-end="url(#head-{head})"/>'
        )
    parts = [f"<g class={quoteattr(f'msg {kind} {arrow.outcome}')}>"]
    lost = arrow.outcome in ("lost", "dropped")
    if lost:  # the arrow stops short of the receiver and ends in a cross
        x2, y2 = x1 + (x2 - x1) * 0.62, y1 + (y2 - y1) * 0.62
    style = f'stroke="{colour}" stroke-width="1.6"'
    if arrow.outcome == "pending":
        style += ' stroke-dasharray="5 4" opacity="0.45"'
    elif lost:
        style += ' stroke-dasharray="3 3"'
    end = "" if lost else f' marker-end="url(#head-{head})"'
    parts.append(f'<line x1="{x1}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}{end}/>')
    if lost:
        parts.append(
            f'<path d="M{x2 - 5:.1f},{y2 - 5:.1f} l10,10 M{x2 - 5:.1f},{y2 + 5:.1f} l10,-10" '
            f'stroke="#dc2626" stroke-width="2"/>'
        )
    if arrow.outcome != "pending":  # in-flight messages are listed elsewhere; keep them quiet
        # Near the head: one message arrives per row, so labels there do not collide.
        t = 0.5 if y1 == y2 or lost else 0.7
        mx, my = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t - 4
        text = arrow.label if not lost else f"{arrow.label} ({arrow.outcome})"
        parts.append(
            f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{escape(text)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _mark(mark: Mark, column: Mapping[str, int], y: RowY) -> str:
    colour = MARK_COLOURS.get(mark.kind, OTHER_COLOUR)
    x, my = column[mark.actor], y(mark.time)
    weight = ' font-weight="700"' if mark.kind == "decide" else ""
    return (
        f"<g class={quoteattr(f'mark {mark.kind}')}>"
        f'<circle cx="{x}" cy="{my:.1f}" r="5" fill="{colour}" stroke="#ffffff" '
        f'stroke-width="1.5"/>'
        f'<text x="{x + 9}" y="{my + 14:.1f}" fill="{colour}" stroke="#ffffff" stroke-width="3" '
        f'paint-order="stroke"{weight}>{escape(mark.label)}</text></g>'
    )
