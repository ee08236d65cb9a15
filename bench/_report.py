"""Targets, verdicts and the Markdown of ``docs/benchmarks.md``.

Each target is a bound on one figure of the run (mostly a ratio of two figures measured
side by side); a missed target says by how much, relative to the bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

# A ratio's unit, as the tables print it after the figure.
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclasses.dataclass(frozen=True)
class Target:
    limit: float
    at_most: bool = True  # the figure must be at most ``limit`` (else at least)
    unit: str = TIMES

    def describe(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {number(self.limit)}{self.unit}"

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def verdict(self, value: float) -> str:
        """``met``, or ``missed by N %``: how far over (or short of) the bound."""
        if self.met(value):
            return "met"
        if self.limit == 0:
            return "missed"
        share = value / self.limit - 1 if self.at_most else 1 - value / self.limit
        return f"**missed** by {share:.0%}".replace("%", " %")


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of a section's targets table."""

    what: str
    measured: str
    baseline: str  # what the figure is compared with, or "—"
    value: float  # the figure the target bounds
    target: Target

    @property
    def met(self) -> bool:
        return self.target.met(self.value)

    def row(self) -> list[str]:
        return [
            self.what,
            self.measured,
            self.baseline,
            f"{number(self.value)}{self.target.unit}",
            self.target.describe(),
            self.target.verdict(self.value),
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "value": self.value,
            "limit": self.target.limit,
            "at_most": self.target.at_most,
            "unit": self.target.unit.strip(),
            "met": self.met,
        }


CHECK_HEADERS = ["what", "measured", "against", "figure", "target", "verdict"]


def number(value: float) -> str:
    """A figure as the tables print it: thousands separated, two decimals below 10, one
    below 100, none above."""
    if isinstance(value, int) or (value == int(value) and abs(value) >= 10):
        return f"{int(value):,}"
    if abs(value) < 10:
        return f"{value:,.2f}"
    if abs(value) < 100:
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{number(value)} ms"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned."""
    numeric = [
        bool(rows) and all(isinstance(row[index], int | float) for row in rows)
        for index in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
    ]
    for row in rows:
        cells = [number(cell) if isinstance(cell, int | float) else str(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks_table(checks: Sequence[Check]) -> str:
    return table(CHECK_HEADERS, [check.row() for check in checks])


@dataclasses.dataclass
class Section:
    key: str
    title: str
    intro: str
    checks: list[Check] = dataclasses.field(default_factory=list)
    details: list[str] = dataclasses.field(default_factory=list)
    raw: Any = None

    def markdown(self) -> str:
        parts = [f"## {self.title}", self.intro]
        if self.checks:
            parts.append(checks_table(self.checks))
        parts.extend(self.details)
        return "\n\n".join(parts)
