"""Server-rendered SVG charts: geometry, axes, labels, escaping and accessibility."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from markupsafe import Markup

from cass.charts import (
    CHAR,
    SERIES_COLOURS,
    WIDTH,
    Series,
    _compact,
    _ticks,
    bar_chart,
    line_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def figure(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))  # noqa: S314 (our own markup, not untrusted input)
    assert root.tag == "figure" and root.get("class") == "chart"
    return root


def svg(markup: Markup) -> ET.Element:
    # The <svg> part on its own must be well-formed XML, as a browser's SVG parser expects.
    text = str(markup)
    part = text[text.index("<svg") : text.index("</svg>") + len("</svg>")]
    return ET.fromstring(part)  # noqa: S314 (our own markup, not untrusted input)


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def size(rect: ET.Element, attr: str) -> float:
    return float(rect.get(attr, "nan"))


def texts(root: ET.Element, css: str) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == css]


def axis_labels(root: ET.Element) -> list[ET.Element]:
    return [t for t in root.iter(f"{SVG}text") if t.get("class") == "label"]


def label_text(label: ET.Element) -> str:
    """Return the text an axis label shows, without the full text of its <title>."""
    return (label.text or "") + "".join(child.tail or "" for child in label)


def test_bar_heights_are_proportional_to_values():
    root = svg(bar_chart("Faults", ["a", "b"], [Series("Faults", [10, 20])]))
    first, second = bars(root)
    assert size(second, "height") == pytest.approx(2 * size(first, "height"), abs=0.02)
    # Both stand on the same baseline.
    assert size(first, "y") + size(first, "height") == pytest.approx(
        size(second, "y") + size(second, "height"), abs=0.02
    )
    assert size(first, "width") == size(second, "width") > 0


def test_stacked_bars_sum_to_the_stack_and_the_axis_covers_the_largest_stack():
    root = svg(
        bar_chart(
            "Energy",
            ["a", "b"],
            [Series("AC", [10, 5]), Series("DC", [20, 15])],
            stacked=True,
        )
    )
    ac_a, ac_b, dc_a, dc_b = bars(root)
    # A stack is one column: the second part sits on the first.
    assert size(ac_a, "x") == size(dc_a, "x")
    assert size(dc_a, "y") + size(dc_a, "height") == pytest.approx(size(ac_a, "y"), abs=0.02)
    total_a = size(ac_a, "height") + size(dc_a, "height")
    total_b = size(ac_b, "height") + size(dc_b, "height")
    assert total_b / total_a == pytest.approx(20 / 30, abs=0.001)
    assert size(ac_a, "height") / total_a == pytest.approx(10 / 30, abs=0.001)
    # The axis ends at the largest stack (30), not the largest single value (20).
    assert texts(root, "tick-label") == ["0", "10", "20", "30"]


def test_stacked_negative_values_stack_below_the_baseline():
    root = svg(bar_chart("Net", ["a"], [Series("In", [10]), Series("Out", [-4])], stacked=True))
    up, down = bars(root)
    assert size(down, "y") == pytest.approx(size(up, "y") + size(up, "height"), abs=0.02)
    assert size(down, "height") == pytest.approx(0.4 * size(up, "height"), abs=0.02)


def test_horizontal_bars_run_along_x_from_the_same_start():
    labels = ["Charger with a long name", "Short"]
    root = svg(bar_chart("Top", labels, [Series("Faults", [10, 20])], horizontal=True))
    first, second = bars(root)
    assert size(second, "width") == pytest.approx(2 * size(first, "width"), abs=0.02)
    assert size(first, "x") == size(second, "x")
    assert size(first, "height") == size(second, "height")
    assert size(second, "y") > size(first, "y")  # the first label is the top row
    assert [label_text(t) for t in axis_labels(root)] == labels
    assert "chart-horizontal" in root.get("class", "")


def test_none_leaves_no_bar_and_zero_leaves_an_empty_one():
    root = svg(bar_chart("Faults", ["a", "b", "c", "d"], [Series("F", [10, None, 0, 20])]))
    found = bars(root)
    assert [r.findtext(f"{SVG}title") for r in found] == [
        "a — F: 10",
        "c — F: 0",
        "d — F: 20",
    ]
    assert size(found[1], "height") == 0


def test_line_breaks_at_none_and_puts_a_titled_point_on_each_value():
    root = svg(
        line_chart("Sessions", ["a", "b", "c", "d"], [Series("AC", [1, 2, None, 4])], unit="kWh")
    )
    path = next(root.iter(f"{SVG}path"))
    assert re.findall(r"[ML]", path.get("d", "")) == ["M", "L", "M"]
    points = list(root.iter(f"{SVG}circle"))
    assert [p.findtext(f"{SVG}title") for p in points] == [
        "a — AC: 1 kWh",
        "b — AC: 2 kWh",
        "d — AC: 4 kWh",
    ]
    ys = [size(p, "cy") for p in points]
    assert ys[0] > ys[1] > ys[2]  # higher values sit higher (smaller y)


@pytest.mark.parametrize(
    ("labels", "series"),
    [([], []), (["a", "b"], [Series("F", [None, None])]), (["a"], [])],
)
@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_no_data_says_so_and_keeps_title_and_desc(chart, labels, series):
    root = svg(chart("Faults <this week>", labels, series))
    assert texts(root, "chart-empty") == ["No data"]
    assert root.findtext(f"{SVG}title") == "Faults <this week>"
    assert root.findtext(f"{SVG}desc") == "No data"
    assert bars(root) == [] and list(root.iter(f"{SVG}circle")) == []


def test_all_zeros_draw_an_axis_from_zero_to_one():
    for chart in (bar_chart, line_chart):
        root = svg(chart("Z", ["a", "b"], [Series("F", [0, 0])]))
        assert texts(root, "tick-label") == ["0", "1"]
    root = svg(bar_chart("Z", ["a", "b"], [Series("F", [0, 0])]))
    assert [size(r, "height") for r in bars(root)] == [0, 0]
    root = svg(bar_chart("Z", ["a", "b"], [Series("F", [0, 0])], horizontal=True))
    assert [size(r, "width") for r in bars(root)] == [0, 0]


def test_text_is_escaped_everywhere():
    markup = bar_chart(
        "<script>alert(1)</script>",
        ["<script>x</script>", "Fish & Chips"],
        [Series("A & B", [1, 2]), Series("<i>C</i>", [3, 4])],
        desc="<img src=x>",
        unit="<u>",
    )
    text = str(markup)
    assert "<script" not in text and "<img" not in text and "<i>" not in text
    assert "<u>" not in text
    root = figure(markup)
    svg_root = svg(markup)
    assert svg_root.findtext(f"{SVG}title") == "<script>alert(1)</script>"
    assert svg_root.findtext(f"{SVG}desc") == "<img src=x>"
    assert root.findtext("figcaption") == "<script>alert(1)</script>"
    assert ["".join(li.itertext()) for li in root.iter("li")] == ["A & B", "<i>C</i>"]
    assert bars(svg_root)[0].findtext(f"{SVG}title") == "<script>x</script> — A & B: 1 <u>"
    script, fish = axis_labels(svg_root)
    assert label_text(script) == "<script>x</sc…"  # shortened; the full text is its <title>
    assert script.findtext(f"{SVG}title") == "<script>x</script>"
    assert label_text(fish) == "Fish & Chips"


def test_control_characters_do_not_break_the_xml():
    svg(bar_chart("T\x00", ["a\x07b"], [Series("s\x1b", [1])]))


def test_aria_labelledby_names_the_title_and_desc_and_ids_differ_between_charts():
    args = ("Faults", ["a"], [Series("F", [1])])
    one, two = svg(bar_chart(*args)), svg(bar_chart(*args))
    assert one.get("role") == "img" and one.get("viewBox", "").startswith("0 0 ")
    ids = []
    for root in (one, two):
        title_id, desc_id = root.get("aria-labelledby", "").split()
        assert root.find(f"{SVG}title").get("id") == title_id
        assert root.find(f"{SVG}desc").get("id") == desc_id
        ids += [title_id, desc_id]
    assert len(set(ids)) == 4


def test_desc_defaults_to_a_summary():
    root = svg(bar_chart("F", ["Jan", "Feb"], [Series("Faults", [3, 7])], unit="faults"))
    assert root.findtext(f"{SVG}desc") == (
        "Bar chart of Faults for 2 labels, Jan to Feb. Highest: 7 faults (Faults, Feb)."
    )
    given = svg(bar_chart("F", ["Jan"], [Series("Faults", [3])], desc="Faults rose."))
    assert given.findtext(f"{SVG}desc") == "Faults rose."


def test_legend_only_with_more_than_one_series():
    assert figure(bar_chart("F", ["a"], [Series("F", [1])])).find("ul") is None
    root = figure(line_chart("F", ["a"], [Series(f"S{i}", [i]) for i in range(8)]))
    legend = root.find("ul")
    assert legend is not None and legend.get("class") == "chart-legend"
    # Colours come from classes that cycle through the six of the palette.
    assert [li.get("class") for li in legend] == [f"series-{i % 6}" for i in range(8)]
    groups = [g.get("class") for g in svg(bar_chart("F", ["a"], [Series("F", [1])])).iter()]
    assert "series series-0" in groups


@pytest.mark.parametrize(
    ("lo", "hi", "integers", "expected"),
    [
        (0, 7, True, ["0", "2", "4", "6", "8"]),
        (0, 13, True, ["0", "5", "10", "15"]),
        (0, 99, False, ["0", "20", "40", "60", "80", "100"]),
        (0, 1234, False, ["0", "500", "1000", "1500"]),
        (0, 0.1 + 0.2, False, ["0", "0.1", "0.2", "0.3"]),
        (-25, 30, False, ["-40", "-20", "0", "20", "40"]),
        (0, 3, True, ["0", "1", "2", "3"]),
        (0, 0.4, True, ["0", "1"]),
    ],
)
def test_ticks_are_nice_and_cover_the_range(lo, hi, integers, expected):
    ticks = _ticks(lo, hi, integers=integers)
    assert [f"{t.normalize():f}" for t in ticks] == expected
    step = ticks[1] - ticks[0]
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    mantissa = step.scaleb(-step.adjusted()).normalize()
    assert mantissa in (1, 2, 5)
    # Covers the range (up to float noise: 0.1 + 0.2 is 0.3 here).
    assert ticks[0] <= min(lo, 0) and float(ticks[-1]) >= hi * (1 - 1e-12)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (12, "12"),
        (0.30000000000000004, "0.3"),
        (0.05, "0.05"),
        (1200, "1.2k"),
        (1500.0, "1.5k"),
        (999_999, "1M"),
        (3_400_000, "3.4M"),
        (2.5e9, "2.5G"),
        (-1500, "-1.5k"),
        (Decimal("2.50"), "2.5"),
        (Decimal("1E+3"), "1k"),
        (0.00001, "0.00001"),
    ],
)
def test_compact_number_format(value, text):
    assert _compact(value) == text


def test_axis_labels_use_compact_numbers_and_tooltips_the_full_value():
    root = svg(bar_chart("E", ["a"], [Series("Energy", [Decimal("1300.50")])], unit="kWh"))
    assert texts(root, "tick-label") == ["0", "500", "1k", "1.5k"]
    assert texts(root, "unit") == ["kWh"]
    assert bars(root)[0].findtext(f"{SVG}title") == "a — Energy: 1,300.5 kWh"


def test_negative_values_hang_below_the_zero_baseline():
    root = svg(bar_chart("Margin", ["a", "b"], [Series("M", [10, -5])]))
    up, down = bars(root)
    baseline = next(ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "baseline")
    zero_y = float(baseline.get("y1", "nan"))
    assert size(up, "y") + size(up, "height") == pytest.approx(zero_y, abs=0.02)
    assert size(down, "y") == pytest.approx(zero_y, abs=0.02)
    assert size(down, "height") == pytest.approx(size(up, "height") / 2, abs=0.02)
    assert texts(root, "tick-label")[0] == "-5"


def test_long_labels_are_shortened_with_the_full_text_in_a_title():
    long = "Multistorey car park, level 3, bay 17"
    root = svg(bar_chart("F", [long, "b"], [Series("F", [1, 2])]))
    label = axis_labels(root)[0]
    assert label_text(label).endswith("…") and len(label_text(label)) < len(long)
    assert long.startswith(label_text(label)[:-1])
    assert label.findtext(f"{SVG}title") == long
    assert bars(root)[0].findtext(f"{SVG}title") == f"{long} — F: 1"


def test_ninety_labels_are_thinned_so_they_do_not_overlap():
    days = [f"2025-{1 + i // 30:02d}-{1 + i % 30:02d}" for i in range(90)]
    root = svg(line_chart("Sessions", days, [Series("AC", list(range(90)))]))
    shown = axis_labels(root)
    assert 4 <= len(shown) <= 12
    assert label_text(shown[0]) == days[0]
    xs = [size(t, "x") for t in shown]
    width = len(days[0]) * CHAR
    assert all(b - a >= width for a, b in itertools.pairwise(xs))
    assert len(list(root.iter(f"{SVG}circle"))) == 90  # every point keeps its tooltip


def test_no_label_count_makes_axis_labels_overlap_or_leave_the_chart():
    for count in range(1, 121):
        days = [f"2025-{1 + i // 30:02d}-{1 + i % 30:02d}" for i in range(count)]
        root = svg(bar_chart("Sessions", days, [Series("AC", [1] * count)]))
        half = len(days[0]) * CHAR / 2
        xs = [size(t, "x") for t in axis_labels(root)]
        assert xs and all(b - a >= 2 * half for a, b in itertools.pairwise(xs)), count
        assert xs[0] - half >= 0 and xs[-1] + half <= WIDTH, count


def test_thinning_keeps_a_regular_step_when_labels_differ_in_length():
    weeks = [f"W{i}" for i in range(1, 53)]
    root = svg(bar_chart("Faults per week", weeks, [Series("F", [1] * 52)]))
    shown = [weeks.index(label_text(t)) for t in axis_labels(root)]
    step = shown[1] - shown[0]
    assert step > 1 and shown[0] == 0
    assert shown == list(range(0, 52, step))[: len(shown)]
    assert len(shown) >= 52 // step - 1  # at most the last one is dropped at the edge


def test_a_few_labels_are_all_shown():
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    root = svg(bar_chart("F", months, [Series("F", list(range(12)))]))
    assert [label_text(t) for t in axis_labels(root)] == months


def test_output_is_deterministic_apart_from_the_id_and_loads_nothing():
    args = ("F", ["a", "b"], [Series("A", [1.5, 2]), Series("B", [None, 3])])

    def without_ids(markup: Markup) -> str:
        return re.sub(r"chart-\d+-", "chart-N-", str(markup))

    first = bar_chart(*args, stacked=True)
    assert without_ids(first) == without_ids(bar_chart(*args, stacked=True))
    assert str(first) != str(bar_chart(*args, stacked=True))
    for markup in (first, line_chart(*args)):
        text = str(markup)
        assert "<script" not in text and "style=" not in text
        assert not re.search(r"\b(fill|stroke)=", text)  # colours belong to the stylesheet
        assert re.findall(r"https?://[^\"]+", text) == ["http://www.w3.org/2000/svg"]


def test_values_must_match_the_labels():
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        bar_chart("F", ["a", "b", "c"], [Series("F", [1, 2])])


def test_nan_is_drawn_as_no_value():
    root = svg(bar_chart("F", ["a", "b"], [Series("F", [math.nan, 2])]))
    assert len(bars(root)) == 1


def test_inline_colours_paint_what_the_stylesheet_would_and_change_nothing_else():
    args = ("F", ["a", "b"], [Series("A", [1, 2]), Series("B", [3, None])])

    def without_ids(markup: Markup) -> str:
        return re.sub(r"chart-\d+-", "chart-N-", str(markup))

    def without_paint(markup: Markup) -> str:
        # The "No data" text is also sized inline: the stylesheet makes it bigger.
        paint = r' (fill|stroke|stroke-\w+)="[^"]*"| font-size="15"'
        return re.sub(paint, "", without_ids(markup))

    for draw, options in ((bar_chart, {}), (bar_chart, {"horizontal": True}), (line_chart, {})):
        plain = draw(*args, **options)
        painted = draw(*args, **options, inline_colours=True)
        assert without_paint(painted) == without_ids(plain)  # the same drawing, only painted
        root = svg(painted)
        groups = [g for g in root.iter(f"{SVG}g") if "series" in g.get("class", "").split()]
        assert [(g.get("fill"), g.get("stroke")) for g in groups] == [
            ("#0072b2", "#0072b2"),
            ("#e69f00", "#e69f00"),
        ]
        assert all(t.get("fill") == "#5b6675" for t in root.iter(f"{SVG}text"))
        for line in root.iter(f"{SVG}line"):
            assert line.get("stroke") == (
                "#5b6675" if line.get("class") == "baseline" else "#d9dee5"
            )
        for rect in bars(root):
            assert rect.get("stroke") == "#ffffff" and rect.get("fill") is None  # the series'
        for path in root.iter(f"{SVG}path"):
            assert path.get("fill") == "none" and path.get("stroke-width") == "2"
    empty = svg(bar_chart("F", ["a"], [Series("A", [None])], inline_colours=True))
    assert [t.get("fill") for t in empty.iter(f"{SVG}text")] == ["#5b6675"]
    # The page's charts stay coloured by the stylesheet alone.
    assert not re.search(r"\b(fill|stroke)=", str(bar_chart(*args)))


def test_inline_colours_cycle_the_palette_like_the_classes():
    many = [Series(f"S{i}", [i + 1]) for i in range(8)]
    root = svg(bar_chart("F", ["a"], many, inline_colours=True))
    fills = [g.get("fill") for g in root.iter(f"{SVG}g") if g.get("fill")]
    assert fills == [*SERIES_COLOURS, *SERIES_COLOURS[:2]]
