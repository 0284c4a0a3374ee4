"""Inline SVG geometry for the traffic pages (no script needed): sparklines of request rates and the per-route
chart of rate and p95 over the range. Pure functions: values in, polyline points out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from apps.traffic.queries import SeriesPoint


def polyline(values: Sequence[float | None], width: float, height: float, top: float | None = None) -> str:
    """SVG polyline points for ``values`` from left to right, 0 at the bottom and ``top`` (default: the largest
    value) at the top; missing values are drawn at 0. "" without values."""
    if not values:
        return ""
    numbers = [v or 0.0 for v in values]
    highest = top if top else max(numbers) or 1.0
    step = width / max(1, len(numbers) - 1)
    points = []
    for i, value in enumerate(numbers):
        x = round(i * step, 1) if len(numbers) > 1 else width / 2
        y = round(height - 1 - (height - 2) * min(value, highest) / highest, 1)
        points.append(f"{x},{y}")
    return " ".join(points)


class RouteChart(TypedDict):
    width: int
    height: int
    rate: str  # polyline points
    p95: str
    max_rate: float
    max_p95: float
    first: str  # the first bucket's time, for the axis
    last: str
    buckets: int


def route_chart(points: list[SeriesPoint], width: int = 640, height: int = 160) -> RouteChart:
    """Rate (requests per second) and p95 (ms) of a series, each scaled to its own maximum."""
    rates = [p["rate"] for p in points]
    p95s = [p["p95"] for p in points]
    max_rate = max(rates, default=0.0)
    max_p95 = max((v for v in p95s if v is not None), default=0.0)
    return {
        "width": width,
        "height": height,
        "rate": polyline(rates, width, height, max_rate or 1.0),
        "p95": polyline(p95s, width, height, max_p95 or 1.0),
        "max_rate": max_rate,
        "max_p95": max_p95,
        "first": points[0]["at"].strftime("%Y-%m-%d %H:%M") if points else "",
        "last": points[-1]["at"].strftime("%Y-%m-%d %H:%M") if points else "",
        "buckets": len(points),
    }
