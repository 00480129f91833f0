"""The reports' charts, drawn here as inline SVG: no JavaScript, no front-end build, nothing to
fetch. Each chart says what it shows in its <title> (screen readers) and the table below it has
the numbers; colours come from chatbridge/static/chatbridge/admin.css."""

import math
from collections.abc import Callable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from rooms.reports.tables import duration

WIDTH, HEIGHT = 590, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30
X_LABELS = 8  # at most, whatever the number of days


def _joined(parts: Sequence[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _nice_step(largest: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that divides 0..largest in about `ticks`."""
    if largest <= 0:
        return 1
    raw = largest / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def duration_tick(seconds: float) -> str:
    """An axis's duration, short: 30 s, 2 min, 1.5 h."""
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _duration_step(largest: float) -> float:
    """A step of seconds that reads well on an axis of durations."""
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if step * 4 >= largest:
            return step
    return _nice_step(largest / 3600) * 3600


def _frame(title: str, body: SafeString, legend: Sequence[tuple[str, str]]) -> SafeString:
    keys = format_html_join(
        "",
        '<span class="legend-key"><span class="swatch {}"></span>{}</span>',
        ((css, name) for name, css in legend),
    )
    return format_html(
        '<figure class="report-chart"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" width="{}" height="{}" role="img"><title>{}</title>{}</svg>'
        '<div class="legend">{}</div></figure>',
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        body,
        keys,
    )


def _axes(
    labels: Sequence[str], largest: float, step: float, tick: Callable[[float], str]
) -> tuple[SafeString, Callable[[float], float], float]:
    """Grid lines and labels; returns them, the y of a value, and the width of a slot."""
    plot_h = HEIGHT - TOP - BOTTOM
    top = max(step, math.ceil(largest / step) * step)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    parts = []
    value = 0.0
    while value <= top + 1e-9:
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y(value):.1f}",
                f"{y(value):.1f}",
                LEFT - 6,
                f"{y(value) + 4:.1f}",
                tick(value),
            )
        )
        value += step
    every = max(1, math.ceil(len(labels) / X_LABELS))
    for index, label in enumerate(labels):
        if index % every == 0:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    f"{LEFT + slot * (index + 0.5):.1f}",
                    HEIGHT - BOTTOM + 16,
                    label,
                )
            )
    return _joined(parts), y, slot


def stacked_bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]]
) -> SafeString:
    """Bars of counts per label, each stacked from `series` (name, css class, counts)."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    step = _nice_step(max(totals, default=0))
    grid, y, slot = _axes(labels, max(totals, default=0), step, lambda v: f"{v:g}")
    bars = []
    width = max(slot * 0.7, 1)
    for index in range(len(labels)):
        base = 0
        x = LEFT + slot * index + (slot - width) / 2
        for name, css, values in series:
            value = values[index]
            if value:
                bars.append(
                    format_html(
                        '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                        "<title>{}: {} {}</title></rect>",
                        css,
                        f"{x:.1f}",
                        f"{y(base + value):.1f}",
                        f"{width:.1f}",
                        f"{y(base) - y(base + value):.1f}",
                        labels[index],
                        value,
                        name,
                    )
                )
            base += value
    body = _joined([grid, *bars])
    return _frame(title, body, [(name, css) for name, css, _ in series])


def duration_lines(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]]
) -> SafeString:
    """Lines of durations (seconds) per label; a label without a value breaks the line."""
    largest = max((v for _, _, values in series for v in values if v is not None), default=0)
    step = _duration_step(largest)
    grid, y, slot = _axes(labels, largest, step, duration_tick)
    lines = []
    for name, css, values in series:
        points: list[list[str]] = [[]]
        dots = []
        for index, value in enumerate(values):
            if value is None:
                points.append([])
                continue
            x = LEFT + slot * (index + 0.5)
            points[-1].append(f"{x:.1f},{y(value):.1f}")
            dots.append(
                format_html(
                    '<circle class="{}" cx="{}" cy="{}" r="2.5"><title>{}: {} {}</title></circle>',
                    css,
                    f"{x:.1f}",
                    f"{y(value):.1f}",
                    labels[index],
                    duration(value),
                    name,
                )
            )
        for run in points:
            if len(run) > 1:
                lines.append(format_html('<polyline class="{}" points="{}"/>', css, " ".join(run)))
        lines.extend(dots)
    body = _joined([grid, *lines])
    return _frame(title, body, [(name, css) for name, css, _ in series])


def share_bars(title: str, rows: Sequence[tuple[str, int]]) -> SafeString:
    """Horizontal bars, one per row (label, count), longest first as given."""
    if not rows:
        return _frame(title, format_html('<text x="{}" y="{}">{}</text>', LEFT, 40, "None."), [])
    largest = max(count for _, count in rows)
    line = min(26.0, (HEIGHT - TOP - 8) / len(rows))
    label_w = 190
    bars = []
    for index, (label, count) in enumerate(rows):
        top = TOP + line * index
        length = (WIDTH - label_w - 60) * count / largest if largest else 0
        bars.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="series-0" x="{}" y="{}" width="{}" height="{}"/>'
                '<text class="tick" x="{}" y="{}">{}</text>',
                label_w - 6,
                f"{top + line * 0.65:.1f}",
                label if len(label) <= 30 else label[:29] + "…",
                label_w,
                f"{top + line * 0.15:.1f}",
                f"{length:.1f}",
                f"{line * 0.7:.1f}",
                f"{label_w + length + 4:.1f}",
                f"{top + line * 0.65:.1f}",
                count,
            )
        )
    return _frame(title, _joined(bars), [])
