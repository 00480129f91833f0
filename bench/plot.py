"""The latency distributions of bench/run.py as one PNG (matplotlib)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.load import percentile

QUANTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 99.5, 99.9]


def as_cdf(samples: list[float]) -> list[tuple[float, float]]:
    return [(q, percentile(samples, q)) for q in QUANTILES]


def write(panels: list[tuple[str, dict[str, list[tuple[float, float]]]]], path: Path) -> None:
    """panels: (title, {series label: [(percentile, ms)]}); one log-x CDF panel each."""
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, grid = plt.subplots(rows, columns, figsize=(6 * columns, 4.5 * rows), squeeze=False)
    axes = [axis for row in grid for axis in row]
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    for axis, (title, series) in zip(axes, panels, strict=False):
        for label, points in series.items():
            axis.plot([ms for _, ms in points], [q for q, _ in points], marker=".", label=label)
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("percentile")
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
