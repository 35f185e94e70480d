"""Server-rendered SVG charts: bar and line charts as inline, script-free, accessible markup.

Each chart is one `<figure class="chart">` with a caption, a legend when there is more than one
series, and an `<svg role="img">` named by its own `<title>` and `<desc>`. Colours come from the
classes `series-0` … `series-5` (static/css/cass.css holds the palette), never from the markup,
unless a chart is asked for with `inline_colours=True`: then every element also carries its
colours as presentation attributes, for renderers that ignore CSS (the report PDFs).
Every bar and point carries a `<title>` ("label — series: value unit") as its tooltip.

Negative values are drawn below the zero baseline (stacked bars stack them downwards); the value
axis always includes zero. When labels would overlap, every k-th one is shown, k being the
smallest step that leaves room for the widest (shortened) label; the first label always shows,
and the last one shown is dropped if keeping it inside the chart would make it touch its
neighbour. Each series needs exactly one value per label (ValueError otherwise); NaN counts as
None.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

Number = float | int | Decimal

PALETTE = 6  # series-0 … series-5 in the stylesheet; more series cycle through them
WIDTH = 640  # viewBox width; CSS scales the whole chart to its container
HEIGHT = 300  # viewBox height of the vertical charts
FONT = 12
CHAR = FONT * 0.6  # average glyph width of a sans-serif face: enough to keep labels apart
AXIS_CHARS = 14  # longest label under a vertical chart before the ellipsis
ROW_CHARS = 28  # longest label beside a horizontal bar
_SVG_NS = "http://www.w3.org/2000/svg"
# XML 1.0 forbids most control characters; a stray one in a charger name must not break the SVG.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_ids = itertools.count(1)

# The stylesheet's palette and greys (static/css/cass.css), written into the markup only for
# `inline_colours`: a PDF renderer reads neither the stylesheet nor its custom properties.
SERIES_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
_MUTED, _LINE, _CARD = "#5b6675", "#d9dee5", "#ffffff"
# class -> the attributes that paint it as the stylesheet does; a series' own colour goes on
# its group, from which bars, points and lines inherit it.
_PAINT = {
    "tick": f'stroke="{_LINE}" stroke-width="1"',
    "baseline": f'stroke="{_MUTED}" stroke-width="1"',
    "bar": f'stroke="{_CARD}" stroke-width="1"',
    "point": f'stroke="{_CARD}" stroke-width="1"',
    "line": 'fill="none" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"',
    "tick-label": f'fill="{_MUTED}"',
    "label": f'fill="{_MUTED}"',
    "unit": f'fill="{_MUTED}"',
    "chart-empty": f'fill="{_MUTED}" font-size="15"',
}
_CLASS = re.compile(r'class="([^"]*)"')


@dataclass(frozen=True)
class Series:
    """One named row of values, one per label; None draws nothing for that label."""

    name: str
    values: Sequence[Number | None]


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    desc: str = "",
    unit: str = "",
    stacked: bool = False,
    horizontal: bool = False,
    inline_colours: bool = False,
) -> Markup:
    """Render a grouped, stacked or horizontal bar chart as an accessible inline SVG figure."""
    grid = _grid(labels, series)
    kind = f"{'stacked ' if stacked else ''}{'horizontal ' if horizontal else ''}bar chart"
    if not _has_data(grid):
        return _empty(title, desc, labels, series, inline_colours)
    lo, hi = _extent(grid, stacked)
    ticks = _ticks(lo, hi, integers=_integral(grid))
    draw = _horizontal_bars if horizontal else _vertical_bars
    body, height = draw(labels, series, grid, ticks, unit, stacked)
    desc = desc or _describe(kind.capitalize(), labels, series, grid, unit)
    css = "chart-bar chart-horizontal" if horizontal else "chart-bar"
    return _figure(css, title, desc, labels, series, height, body, inline_colours)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    desc: str = "",
    unit: str = "",
    inline_colours: bool = False,
) -> Markup:
    """Render a line chart (None leaves a gap in the line) as an accessible inline SVG figure."""
    grid = _grid(labels, series)
    if not _has_data(grid):
        return _empty(title, desc, labels, series, inline_colours)
    lo, hi = _extent(grid, stacked=False)
    ticks = _ticks(lo, hi, integers=_integral(grid))
    frame, body = _vertical_frame(labels, ticks, unit)
    band = frame.width / len(labels)
    radius = 3 if len(labels) <= 60 else 2  # dense lines read better with small dots
    for s_index, (one, values) in enumerate(zip(series, grid, strict=True)):
        path: list[str] = []
        points: list[str] = []
        pen_down = False
        for i, (label, raw, value) in enumerate(zip(labels, one.values, values, strict=True)):
            if value is None:
                pen_down = False  # the next value starts a new segment: a gap, not a bridge
                continue
            x, y = frame.left + (i + 0.5) * band, frame.y(value)
            path.append(f"{'L' if pen_down else 'M'}{_n(x)} {_n(y)}")
            pen_down = True
            points.append(
                f'<circle class="point" cx="{_n(x)}" cy="{_n(y)}" r="{radius}">'
                f"<title>{_tip(label, one.name, raw, unit)}</title></circle>"
            )
        body.append(
            f'<g class="series series-{s_index % PALETTE}">'
            f'<path class="line" d="{" ".join(path)}"/>{"".join(points)}</g>'
        )
    desc = desc or _describe("Line chart", labels, series, grid, unit)
    return _figure("chart-line", title, desc, labels, series, HEIGHT, body, inline_colours)


# Layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """The plot area in viewBox units and the value range its value axis spans."""

    left: float
    top: float
    width: float
    height: float
    low: float
    high: float

    def y(self, value: float) -> float:
        return self.top + (self.high - value) / (self.high - self.low) * self.height

    def x(self, value: float) -> float:
        return self.left + (value - self.low) / (self.high - self.low) * self.width


def _vertical_frame(
    labels: Sequence[str], ticks: list[Decimal], unit: str
) -> tuple[_Frame, list[str]]:
    """Lay out a chart whose labels run along the bottom; return it with its axes drawn."""
    tick_texts = [_compact(t) for t in ticks]
    left = max(36.0, max(len(t) for t in tick_texts) * CHAR + 14)
    top = 28.0 if unit else 12.0  # room for the unit, written above the value axis
    frame = _Frame(
        left, top, WIDTH - left - 16, HEIGHT - top - 30, float(ticks[0]), float(ticks[-1])
    )
    out = ['<g class="grid">']
    for tick, text in zip(ticks, tick_texts, strict=True):
        y = _n(frame.y(float(tick)))
        css = "baseline" if tick == 0 else "tick"
        out.append(
            f'<line class="{css}" x1="{_n(left)}" y1="{y}" x2="{_n(left + frame.width)}" '
            f'y2="{y}"/><text class="tick-label" x="{_n(left - 6)}" y="{y}" dy="0.32em" '
            f'text-anchor="end">{text}</text>'
        )
    if unit:
        out.append(f'<text class="unit" x="4" y="12">{_text(unit)}</text>')
    out.append("</g>")
    out.append(_bottom_labels(labels, frame))
    return frame, out


def _bottom_labels(labels: Sequence[str], frame: _Frame) -> str:
    """Write the labels under the plot, thinned so that no two of them overlap."""
    band = frame.width / len(labels)
    short = [_shorten(label, AXIS_CHARS) for label in labels]
    widest = max(len(s) for s in short) * CHAR
    every = max(1, math.ceil((widest + 8) / band))
    y = _n(frame.top + frame.height + 18)
    out = ['<g class="axis labels">']
    shown_until = -math.inf  # right edge of the last label written
    for i in range(0, len(labels), every):
        # Keep the outermost labels inside the viewBox instead of letting them run off the edge;
        # one pushed back that way may then meet its neighbour, and is left out.
        half = len(short[i]) * CHAR / 2
        x = min(max(frame.left + (i + 0.5) * band, half + 2), WIDTH - half - 2)
        if x - half < shown_until + 8:
            continue
        shown_until = x + half
        out.append(
            f'<text class="label" x="{_n(x)}" y="{y}" text-anchor="middle">'
            f"{_full_title(labels[i], short[i])}{_text(short[i])}</text>"
        )
    out.append("</g>")
    return "".join(out)


def _vertical_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    grid: list[list[float | None]],
    ticks: list[Decimal],
    unit: str,
    stacked: bool,
) -> tuple[list[str], float]:
    """Draw bars rising from the zero baseline, one band per label; return body and height."""
    frame, body = _vertical_frame(labels, ticks, unit)
    band = frame.width / len(labels)
    across = 1 if stacked else len(series)
    bar = min(band * (0.7 if stacked else 0.8) / across, 56.0)  # wide bars look like blocks
    for s_index, one, spans in _spans(series, grid, stacked):
        rects = []
        for i, start, end in spans:
            x = frame.left + (i + 0.5) * band - bar * across / 2 + (0 if stacked else s_index * bar)
            y1, y2 = sorted((frame.y(start), frame.y(end)))
            rects.append(_rect(x, y1, bar, y2 - y1, _tip(labels[i], one.name, one.values[i], unit)))
        body.append(f'<g class="series series-{s_index % PALETTE}">{"".join(rects)}</g>')
    # Drawn again over the bars: their white outlines would otherwise nick the zero line.
    zero = _n(frame.y(0))
    body.append(
        f'<line class="baseline" x1="{_n(frame.left)}" y1="{zero}" '
        f'x2="{_n(frame.left + frame.width)}" y2="{zero}"/>'
    )
    return body, HEIGHT


def _horizontal_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    grid: list[list[float | None]],
    ticks: list[Decimal],
    unit: str,
    stacked: bool,
) -> tuple[list[str], float]:
    """Draw bars running right from the zero line, one row per label; return body and height."""
    short = [_shorten(label, ROW_CHARS) for label in labels]
    left = min(max(48.0, max(len(s) for s in short) * CHAR + 14), 240.0)
    across = 1 if stacked else len(series)
    row = 26.0 if across == 1 else 12.0 * across + 12
    top = 8.0
    frame = _Frame(
        left, top, WIDTH - left - 24, row * len(labels), float(ticks[0]), float(ticks[-1])
    )
    bottom = frame.top + frame.height
    height = bottom + (40 if unit else 26)
    body = ['<g class="grid">']
    for tick in ticks:
        x = _n(frame.x(float(tick)))
        css = "baseline" if tick == 0 else "tick"
        body.append(
            f'<line class="{css}" x1="{x}" y1="{_n(top)}" x2="{x}" y2="{_n(bottom)}"/>'
            f'<text class="tick-label" x="{x}" y="{_n(bottom + 16)}" text-anchor="middle">'
            f"{_compact(tick)}</text>"
        )
    if unit:
        body.append(
            f'<text class="unit" x="{_n(left + frame.width)}" y="{_n(bottom + 34)}" '
            f'text-anchor="end">{_text(unit)}</text>'
        )
    body.append('</g><g class="axis labels">')
    for i, label in enumerate(labels):
        body.append(
            f'<text class="label" x="{_n(left - 8)}" y="{_n(top + (i + 0.5) * row)}" '
            f'dy="0.32em" text-anchor="end">{_full_title(label, short[i])}{_text(short[i])}</text>'
        )
    body.append("</g>")
    thick = (row - 8) / across if across > 1 else row * 0.65
    for s_index, one, spans in _spans(series, grid, stacked):
        rects = []
        for i, start, end in spans:
            y = top + (i + 0.5) * row - thick * across / 2 + (0 if stacked else s_index * thick)
            x1, x2 = sorted((frame.x(start), frame.x(end)))
            rects.append(
                _rect(x1, y, x2 - x1, thick, _tip(labels[i], one.name, one.values[i], unit))
            )
        body.append(f'<g class="series series-{s_index % PALETTE}">{"".join(rects)}</g>')
    zero = _n(frame.x(0))  # over the bars, as in _vertical_bars
    body.append(
        f'<line class="baseline" x1="{zero}" y1="{_n(top)}" x2="{zero}" y2="{_n(bottom)}"/>'
    )
    return body, height


def _spans(
    series: Sequence[Series], grid: list[list[float | None]], stacked: bool
) -> list[tuple[int, Series, list[tuple[int, float, float]]]]:
    """Return, per series, each bar as (label index, start value, end value)."""
    # Stacks grow up from zero and down from zero separately, so a negative part never hides
    # a positive one.
    above = [0.0] * len(grid[0])
    below = [0.0] * len(grid[0])
    out = []
    for s_index, (one, values) in enumerate(zip(series, grid, strict=True)):
        spans = []
        for i, value in enumerate(values):
            if value is None:
                continue
            start = 0.0
            if stacked:
                bases = above if value >= 0 else below
                start = bases[i]
                bases[i] += value
            spans.append((i, start, start + value))
        out.append((s_index, one, spans))
    return out


def _figure(
    css: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    height: float,
    body: list[str],
    inline_colours: bool = False,
) -> Markup:
    """Wrap a drawn chart in its figure: caption, legend and the labelled <svg>."""
    # The counter keeps ids apart on one page; the content hash keeps them apart when htmx
    # swaps in a chart that another worker process numbered.
    content = repr((title, list(labels), [(s.name, list(s.values)) for s in series]))
    uid = f"chart-{next(_ids)}-{zlib.crc32(content.encode()):08x}"
    legend = ""
    if len(series) > 1 and css != "chart-empty":
        items = "".join(
            f'<li class="series-{i % PALETTE}"><span class="swatch"></span>{_text(s.name)}</li>'
            for i, s in enumerate(series)
        )
        legend = f'<ul class="chart-legend">{items}</ul>'
    drawing = "".join(body)
    if inline_colours:
        drawing = _painted(drawing)
    svg = (
        f'<svg xmlns="{_SVG_NS}" class="{css}" viewBox="0 0 {WIDTH} {_n(height)}" '
        f'role="img" aria-labelledby="{uid}-title {uid}-desc" font-size="{FONT}">'
        f'<title id="{uid}-title">{_text(title)}</title>'
        f'<desc id="{uid}-desc">{_text(desc)}</desc>{drawing}</svg>'
    )
    html = f'<figure class="chart"><figcaption>{_text(title)}</figcaption>{legend}{svg}</figure>'
    return Markup(html)  # noqa: S704 (every text in it went through _text or is a number)


def _empty(
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    inline_colours: bool = False,
) -> Markup:
    """Draw the "No data" placeholder, still titled and described."""
    body = [
        f'<text class="chart-empty" x="{WIDTH // 2}" y="64" text-anchor="middle">No data</text>'
    ]
    return _figure(
        "chart-empty", title, desc or "No data", labels, series, 120, body, inline_colours
    )


def _painted(drawing: str) -> str:
    """Add to each classed element of `drawing` the colours the stylesheet would give it."""

    def paint(match: re.Match[str]) -> str:
        attributes = [match.group(0)]
        for css in match.group(1).split():
            if css in _PAINT:
                attributes.append(_PAINT[css])
            elif css.startswith("series-"):
                colour = SERIES_COLOURS[int(css.removeprefix("series-")) % PALETTE]
                attributes.append(f'fill="{colour}" stroke="{colour}"')
        return " ".join(attributes)

    # Every class attribute here is one this module wrote; texts are escaped, so none of them
    # holds a quote that could look like one.
    return _CLASS.sub(paint, drawing)


# Data and numbers --------------------------------------------------------------------------


def _grid(labels: Sequence[str], series: Sequence[Series]) -> list[list[float | None]]:
    """Return each series' values as floats, None where there is nothing to draw."""
    grid = []
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(
                f"series {one.name!r} has {len(one.values)} values for {len(labels)} labels"
            )
        grid.append([_number(v) for v in one.values])
    return grid


def _number(value: Number | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None  # NaN and infinity have no bar either


def _has_data(grid: list[list[float | None]]) -> bool:
    return any(v is not None for values in grid for v in values)


def _integral(grid: list[list[float | None]]) -> bool:
    # Counts (faults, sessions) should not get an axis at 0.2, 0.4 …
    return all(v.is_integer() for values in grid for v in values if v is not None)


def _extent(grid: list[list[float | None]], stacked: bool) -> tuple[float, float]:
    """Return the lowest and highest value to show (stack totals when stacked), zero included."""
    lo = hi = 0.0
    if stacked:
        for column in zip(*grid, strict=True):
            hi = max(hi, sum(v for v in column if v is not None and v > 0))
            lo = min(lo, sum(v for v in column if v is not None and v < 0))
    else:
        for values in grid:
            for v in values:
                if v is not None:
                    lo, hi = min(lo, v), max(hi, v)
    return lo, hi


def _ticks(lo: float, hi: float, *, integers: bool = False) -> list[Decimal]:
    """Return evenly spaced 1-2-5 ticks from at or below `lo` to at or above `hi`, zero included."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        hi = 1.0  # all zeros: an axis from 0 to 1 rather than a division by zero
    raw = (hi - lo) / 5
    exponent = math.floor(math.log10(raw))
    fraction = raw / 10**exponent
    step = Decimal(next((m for m in (1, 2, 5) if fraction <= m), 10)).scaleb(exponent).normalize()
    if integers and step < 1:
        step = Decimal(1)
    # Twelve significant digits drop float noise (0.30000000000000004 is 0.3 and needs no 0.35).
    first = math.floor(Decimal(f"{lo:.12g}") / step)
    last = math.ceil(Decimal(f"{hi:.12g}") / step)
    return [step * i for i in range(first, last + 1)]


def _compact(value: Number) -> str:
    """Return `value` in three significant digits with a k, M, G or T suffix: 1.2k, 3.4M."""
    number = float(f"{float(value):.3g}")  # round first, so that 999,999 becomes 1M, not 1000k
    suffix = ""
    for power, letter in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if abs(number) >= 10**power:
            number, suffix = number / 10**power, letter
            break
    text = f"{number:.3g}"
    if "e" in text:  # tiny numbers: plain decimals, never 1e-05 on an axis
        text = f"{number:.10f}".rstrip("0").rstrip(".")
    return ("0" if text in ("-0", "0.0") else text) + suffix


def _full(value: Number) -> str:
    """Return `value` in full with thousands separators for a tooltip: 12,345.5."""
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# Markup ------------------------------------------------------------------------------------


def _text(value: object) -> Markup:
    return escape(str(value).translate(_CONTROL))


def _n(value: float) -> str:
    """Return a coordinate with two decimals at most, so the markup stays short and stable."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _shorten(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _full_title(label: str, short: str) -> str:
    # A shortened axis label still shows its full text on hover.
    return f"<title>{_text(label)}</title>" if short != label else ""


def _tip(label: str, name: str, value: Number | None, unit: str) -> Markup:
    text = f"{label} — {name}: {_full(value) if value is not None else ''}"
    return _text(f"{text} {unit}".rstrip() if unit else text)


def _rect(x: float, y: float, width: float, height: float, tip: Markup) -> str:
    return (
        f'<rect class="bar" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}">'
        f"<title>{tip}</title></rect>"
    )


def _describe(
    kind: str,
    labels: Sequence[str],
    series: Sequence[Series],
    grid: list[list[float | None]],
    unit: str,
) -> str:
    """Summarise a chart in one sentence for its <desc> when the caller gave none."""
    names = ", ".join(s.name for s in series)
    span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
    value, s_index, i = max(
        (v, s, i) for s, values in enumerate(grid) for i, v in enumerate(values) if v is not None
    )
    top = f"{_full(value)} {unit}".rstrip()
    return (
        f"{kind} of {names} for {len(labels)} labels, {span}. "
        f"Highest: {top} ({series[s_index].name}, {labels[i]})."
    )


def heat_map(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[Number | None]],
    *,
    desc: str = "",
    unit: str = "",
    inline_colours: bool = False,
) -> Markup:
    """Render a grid of shaded cells (one row of values per row label; darker is more, an
    empty cell is None) as an accessible inline SVG figure."""
    grid = [[_number(v) for v in row] for row in values]
    if len(grid) != len(rows) or any(len(row) != len(columns) for row in grid):
        raise ValueError(f"values must be {len(rows)} rows of {len(columns)}")
    flat = [v for row in grid for v in row if v is not None]
    labels = [f"{r} {c}" for r in rows for c in columns]
    series = [Series(title, [v for row in values for v in row])]
    if not flat:
        return _empty(title, desc, labels, series, inline_colours)
    top = max(flat) or 1.0
    left = max(len(r) for r in rows) * CHAR + 12
    cell_w = (WIDTH - left - 8) / len(columns)
    cell_h, head = 24.0, 8.0
    body = ['<g class="series series-0">']
    for i, (row, cells) in enumerate(zip(rows, grid, strict=True)):
        y = head + i * cell_h
        body.append(
            f'<text class="label" x="{_n(left - 6)}" y="{_n(y + cell_h / 2 + 4)}" '
            f'text-anchor="end">{_text(row)}</text>'
        )
        for j, (column, raw, value) in enumerate(zip(columns, values[i], cells, strict=True)):
            if value is None:
                continue  # no such cell in the data (an hour a DST day skipped): left blank
            # A floor keeps a zero cell visible against the page, so zero differs from none.
            shade = 0.06 + 0.94 * max(value, 0.0) / top
            body.append(
                f'<rect class="bar" x="{_n(left + j * cell_w)}" y="{_n(y)}" '
                f'width="{_n(cell_w)}" height="{_n(cell_h)}" fill-opacity="{shade:.3f}">'
                f"<title>{_tip(f'{row} {column}', title, raw, unit)}</title></rect>"
            )
    body.append("</g>")
    bottom = head + len(rows) * cell_h
    step = max(1, math.ceil(max(len(c) for c in columns) * CHAR / cell_w + 0.5))
    for j in range(0, len(columns), step):
        x = left + (j + 0.5) * cell_w
        body.append(
            f'<text class="tick-label" x="{_n(x)}" y="{_n(bottom + 16)}" '
            f'text-anchor="middle">{_text(columns[j])}</text>'
        )
    if not desc:
        value, i = max(
            (v, n) for n, v in enumerate(v for row in grid for v in row) if v is not None
        )
        desc = (
            f"Heat map of {title} by {len(rows)} rows and {len(columns)} columns. "
            f"Highest: {_full(value)} {unit} ({labels[i]})."
        )
    return _figure("chart-heat", title, desc, labels, series, bottom + 24, body, inline_colours)
