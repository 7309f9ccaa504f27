"""Percentiles and summaries of repeated runs.

Every figure the benchmarks report is the median of several runs with its spread (the lowest
and highest run), because absolute numbers drift on a shared machine; ratios between systems
are taken between medians measured in the same run of the suite.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1]) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of some runs and the lowest and highest of them."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            nan = float("nan")
            return cls(nan, nan, nan, 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    @property
    def spread_pct(self) -> float:
        """Half the range as a percentage of the median (0 for one run)."""
        if self.runs < 2 or self.median == 0:
            return 0.0
        return 50.0 * (self.high - self.low) / abs(self.median)

    def as_json(self) -> dict[str, float]:
        return {"median": self.median, "low": self.low, "high": self.high, "runs": self.runs}

    def text(self, digits: int = 0, scale: float = 1.0) -> str:
        """``12,345 (±3%)``: the median and half its range in percent."""
        if self.runs == 0:
            return "-"
        value = f"{self.median * scale:,.{digits}f}"
        return value if self.runs < 2 else f"{value} (±{self.spread_pct:.0f}%)"
