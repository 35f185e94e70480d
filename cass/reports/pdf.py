"""A report as a printable A4 PDF: title, period, filters, chart and table, footer on each page.

fpdf2 writes the document (pure Python; no system libraries) and draws the page's own SVG
chart, asked for with its colours inline since fpdf2 reads no stylesheet. The text is set in
Open Sans from the `ttf-opensans` wheel: the PDF core fonts know only Latin-1, and labels hold
"·", "—", "…" and names in any Latin script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from zoneinfo import ZoneInfo

from flask import Response
from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode
from markupsafe import Markup
from sqlalchemy import select
from ttf_opensans import OPENSANS_BOLD, OPENSANS_REGULAR, OPENSANS_SEMIBOLD

from cass.charts import SERIES_COLOURS
from cass.extensions import db
from cass.models import Tenant
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.reports.presenting import chart_for, report_value
from cass.services.reports import Filters, Report, Table
from cass.services.reports.base import entity_names
from cass.tenancy import current_tenant_id

FONT = "opensans"
INK = (28, 36, 48)  # the stylesheet's --fg, --muted, --line and a header tint
MUTED = (91, 102, 117)
LINE = (217, 222, 229)
TINT = (238, 241, 245)
MARGIN = 16  # mm
TABLE_PT = 8.5
CELL_PAD = 1.8  # mm, left and right of a cell's text
HEADER_WRAP_MM = 18  # a header wider than this wraps (at spaces) rather than widen its column
LABEL_MIN_MM = 40
# A chart taller than this (a long horizontal bar chart) is drawn narrower, so that the table
# still starts on the first page.
CHART_MAX_MM = 115
FILTER_LABELS = {"site": "Site", "vendor": "Vendor", "engineer": "Engineer"}
FILTER_TABLES = {"site": "site", "vendor": "vendor", "engineer": "app_user"}
# fpdf2 draws neither <title> nor <desc>, and drops the text that follows one inside a <text>:
# a shortened axis label would vanish with its tooltip.
_HIDDEN = re.compile(r"<(title|desc)\b[^>]*>[^<]*</\1>")
_DESC = re.compile(r"<desc\b[^>]*>([^<]*)</desc>")
_VIEWBOX = re.compile(r'viewBox="0 0 ([\d.]+) ([\d.]+)"')


@dataclass(frozen=True)
class _Facts:
    """What the PDF says beside the table: whose, when, the grouping and the filters by name."""

    tenant: str
    generated: datetime
    grouping: str | None
    filters: list[tuple[str, str]]


def report_pdf(report: Report, filters: Filters, table: Table) -> bytes:
    """Return `table` of `report` as an A4 PDF document for the current tenant."""
    pdf = _Document(report, filters, _facts(report, filters))
    pdf.add_page()
    pdf.heading()
    pdf.chart(chart_for(report, table, inline_colours=True), _series_names(table))
    for note in table.notes:
        pdf.paragraph(note, MUTED, 8.5)
    pdf.table_of(table)
    return bytes(pdf.output())


def pdf_download(document: bytes, name: str) -> Response:
    """Return `document` as a `<name>-<date>.pdf` attachment (dated as the CSV downloads)."""
    response = Response(document, mimetype="application/pdf")
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _facts(report: Report, filters: Filters) -> _Facts:
    """Return the tenant's name, the time now in its zone and the filters named, not numbered."""
    tenant = db.session.scalar(select(Tenant.name).where(Tenant.id == current_tenant_id()))
    grouping = report.groupings[filters.by] if len(report.groupings) > 1 else None
    named: list[tuple[str, str]] = []
    for name in report.filters:
        value = getattr(filters, name)
        if value is None:
            continue
        if name == "priority":
            named.append(("Priority", PRIORITIES.get(value, value)))
        elif name == "category":
            named.append(("Category", CATEGORIES.get(value, value)))
        else:
            # An id of another tenant's row finds no name here: it is shown as asked for.
            found = entity_names(FILTER_TABLES[name], [value]).get(value, f"#{value}")
            named.append((FILTER_LABELS[name], found))
    return _Facts(tenant or "", datetime.now(ZoneInfo(filters.zone)), grouping, named)


class _Document(FPDF):
    """An A4 page with the report's running head (after page 1) and footer."""

    def __init__(self, report: Report, filters: Filters, facts: _Facts) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report, self.filters, self.facts = report, filters, facts
        self.add_font(FONT, "", str(OPENSANS_REGULAR.path))
        self.add_font(FONT, "B", str(OPENSANS_BOLD.path))
        self.add_font(f"{FONT}-semi", "", str(OPENSANS_SEMIBOLD.path))
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=MARGIN + 6)
        self.set_title(report.title)
        self.set_subject(f"{report.title}, {_period(filters)}")
        self.set_author(facts.tenant)
        self.set_creator("CASS")
        self.set_lang("en")
        self.set_creation_date(facts.generated)

    def header(self) -> None:
        if self.page_no() == 1:
            return  # the first page has the full heading instead
        self.set_font(FONT, size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 4, f"{self.report.title} · {_period(self.filters)}")
        self.ln(8)

    def footer(self) -> None:
        self.set_y(-MARGIN)
        self.set_draw_color(*LINE)
        self.line(MARGIN, self.get_y() - 1.5, self.w - MARGIN, self.get_y() - 1.5)
        self.set_font(FONT, size=7.5)
        self.set_text_color(*MUTED)
        when = self.facts.generated.strftime("%Y-%m-%d %H:%M")
        left = f"{self.facts.tenant} · Generated {when} ({self.filters.zone}) by CASS"
        self.cell(self.epw / 2, 4, left.lstrip(" ·"))
        self.cell(self.epw / 2, 4, f"Page {self.page_no()} of {{nb}}", align="R")

    # --- the parts of page 1 ------------------------------------------------------------

    def heading(self) -> None:
        """Write the title, what the report tells, the period and the filters."""
        self.set_font(FONT, "B", 17)
        self.set_text_color(*INK)
        self.multi_cell(0, 8, self.report.title, align="L", new_x="LMARGIN", new_y="NEXT")
        self.paragraph(self.report.summary, MUTED, 9.5)
        self.ln(1)
        facts = [("Period", f"{_period(self.filters)} ({self.filters.zone})")]
        if self.facts.grouping:
            facts.append(("Grouped by", self.facts.grouping))
        facts += self.facts.filters or [("Filters", "none")]
        for label, value in facts:
            self.set_font(f"{FONT}-semi", size=9)
            self.set_text_color(*MUTED)
            self.cell(26, 5, label)
            self.set_font(FONT, size=9)
            self.set_text_color(*INK)
            self.multi_cell(0, 5, value, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(3)
        self.set_draw_color(*LINE)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.ln(4)

    def paragraph(self, text: str, colour: tuple[int, int, int], size: float) -> None:
        self.set_font(FONT, size=size)
        self.set_text_color(*colour)
        self.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def chart(self, figure: Markup | None, series: Sequence[str]) -> None:
        """Draw the chart's caption, its legend (two series or more) and the chart itself."""
        if figure is None:
            return
        text = str(figure)
        caption = html.unescape(_between(text, "<figcaption>", "</figcaption>"))
        svg = text[text.index("<svg") : text.index("</svg>") + len("</svg>")]
        described = _DESC.search(svg)
        alt = f"{caption}. {html.unescape(described.group(1))}" if described else caption
        svg = _HIDDEN.sub("", svg).replace("<svg ", f'<svg font-family="{FONT}" ', 1)
        if caption != self.report.title:  # say "first 10 of 25", not the title again
            self.set_font(f"{FONT}-semi", size=10)
            self.set_text_color(*INK)
            self.multi_cell(0, 5, caption, align="L", new_x="LMARGIN", new_y="NEXT")
        if len(series) > 1:
            self.legend(series)
        box = _VIEWBOX.search(svg)
        aspect = float(box.group(2)) / float(box.group(1)) if box else 0.5
        width = min(self.epw, CHART_MAX_MM / aspect)
        top = self.get_y() + 1
        self.image(
            BytesIO(svg.encode()),
            x=MARGIN + (self.epw - width) / 2,
            y=top,
            w=width,
            h=width * aspect,
            alt_text=alt,
        )
        self.set_y(top + width * aspect + 4)

    def legend(self, series: Sequence[str]) -> None:
        self.set_font(FONT, size=8)
        self.set_text_color(*MUTED)
        self.ln(0.5)
        for index, name in enumerate(series):
            width = 3 + 1.5 + self.get_string_width(name) + 5
            if self.get_x() + width > self.w - MARGIN:
                self.ln(4.5)
            colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
            self.set_fill_color(colour)
            self.rect(self.get_x(), self.get_y() + 0.9, 2.6, 2.6, style="F")
            self.set_x(self.get_x() + 4.1)
            self.cell(width - 4.1, 4.5, name)
        self.ln(5)

    def table_of(self, table: Table) -> None:
        """Write the table: header on every page, numbers right-aligned, the totals in bold."""
        columns = table.columns
        rows = [
            [report_value(v, c.kind) for v, c in zip(row, columns, strict=True)]
            for row in table.rows
        ]
        totals = None
        if table.totals is not None and table.rows:
            totals = [
                str(v) if n == 0 else report_value(v, c.kind)
                for n, (v, c) in enumerate(zip(table.totals, columns, strict=True))
            ]
        widths = self.column_widths([c.label for c in columns], rows + ([totals] if totals else []))
        self.set_font(FONT, size=TABLE_PT)
        self.set_text_color(*INK)
        self.set_draw_color(*LINE)
        self.set_fill_color(255)  # the legend's last swatch colour would fill the cells
        self.set_line_width(0.2)
        align = tuple("RIGHT" if c.numeric else "LEFT" for c in columns)
        with self.table(
            width=self.epw,
            col_widths=widths,
            text_align=align,
            borders_layout="HORIZONTAL_LINES",
            headings_style=FontFace(family=f"{FONT}-semi", color=INK, fill_color=TINT),
            line_height=4.2,
            padding=(1.4, CELL_PAD),
            v_align="TOP",
            repeat_headings=1,
            cell_fill_mode=TableCellFillMode.NONE,
        ) as out:
            out.row([c.label for c in columns])
            if not rows:
                out.row().cell("Nothing in this period.", colspan=len(columns), align="LEFT")
            for row in rows:
                out.row(row)
            if totals:
                bold = FontFace(family=FONT, emphasis="BOLD", fill_color=TINT)
                out.row(totals, style=bold)

    def column_widths(self, headers: list[str], rows: list[list[str]]) -> list[float]:
        """Size the figures' columns to their values; the label column takes what is left."""
        self.set_font(f"{FONT}-semi", size=TABLE_PT)  # the header's face is the wider one
        natural = []
        for index, header in enumerate(headers):
            values = max((self.get_string_width(r[index]) for r in rows), default=0)
            # A long header wraps, but never inside a word.
            word = max(self.get_string_width(w) for w in header.split())
            wrapped = min(self.get_string_width(header), max(word, HEADER_WRAP_MM))
            natural.append(max(values, wrapped) + 2 * CELL_PAD + 0.5)
        figures = natural[1:]
        # One width for all figures reads as a tidy grid, when it leaves the labels room.
        if figures and max(figures) * len(figures) <= self.epw - LABEL_MIN_MM:
            figures = [max(figures)] * len(figures)
        rest = self.epw - sum(figures)
        # Labels longer than their column wrap; only a table too wide for the page is scaled.
        return [rest, *figures] if rest >= LABEL_MIN_MM else natural


def _series_names(table: Table) -> list[str]:
    if table.chart is None:
        return []
    return [table.columns[table.position(key)].label for key in table.chart.series]


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start) : text.index(end)]


def _period(filters: Filters) -> str:
    return f"{filters.start.isoformat()} to {filters.end.isoformat()}"
