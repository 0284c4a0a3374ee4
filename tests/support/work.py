"""Work measured in Python function calls: a bound that machine load does not change, for tests that must show
that hostile input is refused or evaluated without spinning (the benches measure time; tests never do)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

# Generous for the rules the tests try (50 to ~180,000 calls); a spinning rule costs far more (iterating a
# never-matching hourly rule over just 4 years makes ~6.8 M calls; walking day by day to the year 9999, tens of M).
BOUNDED_WORK = 1_000_000


def python_calls(work: Callable[[], object], *, expected: type[BaseException] | None = None) -> int:
    """How many Python function calls ``work`` makes (an ``expected`` exception is swallowed after counting)."""
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        with contextlib.suppress(*(expected,) if expected else ()):
            work()
    finally:
        sys.setprofile(None)
    return calls
