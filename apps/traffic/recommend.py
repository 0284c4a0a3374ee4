"""Caching recommendations from sampled requests: pure analysis, no database.

For each GET or HEAD route of one application over a window, the evidence is Platformatic ICC's cacheability idea —
**body stability** (the share of consecutive responses whose body hash equals the previous one's), the
**inter-request time** (the median gap between requests) and the route's **skew** (its share of the application's
requests) — together with what the HTTP caching rules (RFC 9111, read by httplint in :mod:`apps.traffic.cachelint`)
say about its responses. The outcome, in this order:

1. ``none`` when a response sets a cookie, says ``no-store`` or ``private``, carries ``Vary: *``, answers a request
   with Authorization without saying ``public``, when bodies vary, or when too few requests were sampled — each
   with its reason;
2. ``validators`` when the body is stable but a TTL would rarely be hit (the median gap is at least the TTL, or
   its replay serves under :data:`MIN_HIT_RATIO` of the requests), or the responses ask to be revalidated every time
   (``no-cache``, a stated lifetime of zero); its estimate is then the 304s revalidation would answer;
3. ``ttl`` otherwise: the lower quartile of the times a body stayed the same, rounded down to a step of
   :data:`STEPS`, never above the responses' own stated lifetime nor ``max_ttl``.

Every recommendation carries an **estimate from replaying** the route's requests in time order through a simulated
cache with that TTL (:func:`replay`): a request within the TTL of the stored response is a hit (a stale one if its
real body differed), any other goes to the origin and refreshes the entry.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from statistics import median
from typing import Any

from httplint.cache import HEURISTIC_CACHEABLE_STATUS

from apps.traffic import cachelint

CACHEABLE_METHODS = ("GET", "HEAD")
STORABLE_STATUS = frozenset(s for s in HEURISTIC_CACHEABLE_STATUS if s != 206)
MIN_SAMPLES = 10
MIN_STABILITY = 0.8
MIN_HIT_RATIO = 0.5
STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
TTL, VALIDATORS, NONE = "ttl", "validators", "none"


@dataclass(frozen=True)
class Request:
    """One sampled request and its response (see :class:`apps.traffic.models.Sample`); ``at`` in epoch seconds."""

    at: float
    route: str
    method: str
    status: int
    duration_ms: float
    size: int = 0
    body_hash: str = ""
    cache_control: str = ""
    expires: str = ""
    etag: str = ""
    last_modified: str = ""
    vary: str = ""
    set_cookie: bool = False
    authorization: bool = False


@dataclass(frozen=True)
class Advice:
    route: str
    method: str
    kind: str
    ttl_seconds: int
    reasons: list[str]
    evidence: dict[str, Any]
    estimate: dict[str, Any]


def duration(seconds: float) -> str:
    """``90`` → ``1 min 30 s``; hours and days for long ones."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if whole >= size:
            big, rest = divmod(whole, size)
            small = {"d": ("h", 3600), "h": ("min", 60), "min": ("s", 1)}[unit]
            tail = rest // small[1]
            return f"{big} {unit} {tail} {small[0]}" if tail else f"{big} {unit}"
    return f"{whole} s"


def times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def stable_pairs(requests: Sequence[Request]) -> tuple[int, int]:
    """(pairs of consecutive stored bodies, of which identical) — the body stability's numerator and denominator."""
    hashes = [r.body_hash for r in requests if r.body_hash and r.status in STORABLE_STATUS]
    same = sum(1 for a, b in pairwise(hashes) if a == b)
    return max(0, len(hashes) - 1), same


def lifetimes(requests: Sequence[Request]) -> tuple[list[float], float]:
    """How long each body stayed the same: (completed stretches, in seconds; the last stretch so far)."""
    bodies = [(r.at, r.body_hash) for r in requests if r.body_hash and r.status in STORABLE_STATUS]
    if not bodies:
        return [], 0.0
    done, start, current = [], bodies[0][0], bodies[0][1]
    for at, body in bodies[1:]:
        if body != current:
            done.append(at - start)
            start, current = at, body
    return done, bodies[-1][0] - start


def lower_quartile(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 4]


def step_down(seconds: float) -> int:
    """The largest step of :data:`STEPS` not above ``seconds`` (0 below a second)."""
    at = bisect_right(STEPS, seconds)
    return STEPS[at - 1] if at else 0


def replay(requests: Sequence[Request], ttl: int) -> dict[str, Any]:
    """Replay the requests in time order through a cache keeping the route's last stored response for ``ttl``."""
    hits = stale = not_modified = 0
    latency_saved = bytes_saved = 0.0
    stored_at: float | None = None
    stored_body = previous_body = ""
    for r in requests:
        if stored_at is not None and ttl > 0 and r.at - stored_at < ttl:
            hits += 1
            latency_saved += r.duration_ms
            stale += int(bool(r.body_hash) and r.body_hash != stored_body)
        elif r.status in STORABLE_STATUS and r.body_hash:
            stored_at, stored_body = r.at, r.body_hash
        if r.body_hash and r.body_hash == previous_body:
            not_modified += 1  # a revalidation would have been answered 304 without the body
            bytes_saved += r.size
        if r.body_hash:
            previous_body = r.body_hash
    total = len(requests)
    return {
        "replayed_requests": total,
        "hit_ratio": round(hits / total, 4) if total else 0.0,
        "origin_requests_saved": hits,
        "latency_saved_ms": round(latency_saved, 3),
        "stale_hits": stale,
        "not_modified": not_modified,
        "bytes_saved_by_304": int(bytes_saved),
    }


def _blockers(found: cachelint.Findings) -> list[str]:
    n = found.responses
    checks = (
        (found.set_cookie, "set a cookie (Set-Cookie): a cache would hand one client's cookie to others"),
        (found.no_store, "say Cache-Control: no-store: no cache may keep them"),
        (found.private, "say Cache-Control: private: only the client's own cache may keep them"),
        (found.vary_star, "say Vary: *: no stored response can ever match a later request"),
        (
            found.authorization_dependent,
            "answer requests that carried Authorization without Cache-Control: public: they may differ per caller",
        ),
    )
    return [f"{count} of {n} responses {why}." for count, why in checks if count]


def _validators_reason(found: cachelint.Findings) -> str:
    n = found.responses
    if found.etag or found.last_modified:
        return (
            f"{found.etag} of {n} responses carry an ETag and {found.last_modified} a Last-Modified: answer "
            "If-None-Match / If-Modified-Since with 304 Not Modified."
        )
    return (
        "No response carries an ETag or Last-Modified yet: add one (the body hash makes a good ETag) and answer "
        "conditional requests with 304 Not Modified."
    )


def advise(
    route: str,
    method: str,
    requests: Sequence[Request],
    *,
    application_requests: int,
    max_ttl: int,
    verdicts: dict[tuple[Any, ...], cachelint.Verdict] | None = None,
) -> Advice:
    """The recommendation for one route and method; ``requests`` are its samples in time order."""
    found = cachelint.findings(requests, verdicts)
    pairs, same = stable_pairs(requests)
    stability = same / pairs if pairs else 0.0
    gaps = [b.at - a.at for a, b in pairwise(requests)]
    gap = median(gaps) if gaps else 0.0
    skew = len(requests) / application_requests if application_requests else 0.0
    done, ongoing = lifetimes(requests)
    lifetime = lower_quartile(done) if done else ongoing
    evidence: dict[str, Any] = {
        "samples": len(requests),
        "body_pairs": pairs,
        "stability": round(stability, 4),
        "median_gap_s": round(gap, 3),
        "skew": round(skew, 4),
        "body_changes": len(done),
        "lifetime_s": round(lifetime, 3),
        "headers": found.as_evidence(),
    }
    reasons = [
        f"{len(requests)} requests sampled, {percent(skew)} of the application's; "
        f"a median of {duration(gap)} between requests.",
    ]
    if pairs:
        reasons.append(f"The body was the same as the previous response's in {same} of {pairs} pairs.")

    def advice(kind: str, ttl: int) -> Advice:
        if kind != VALIDATORS:
            return Advice(route, method, kind, ttl, reasons, evidence, replay(requests, ttl))
        # Revalidation still reaches the origin: the saving is the 304s; the TTL's own replay is kept beside it.
        estimate = replay(requests, 0)
        estimate.update(ttl_considered_s=ttl, ttl_hit_ratio=replay(requests, ttl)["hit_ratio"] if ttl else 0.0)
        return Advice(route, method, kind, ttl, reasons, evidence, estimate)

    blockers = _blockers(found)
    if len(requests) < MIN_SAMPLES:
        blockers.append(f"Only {len(requests)} requests were sampled; at least {MIN_SAMPLES} are needed to judge.")
    elif not pairs:
        blockers.append("No response body hashes were sampled, so body stability is unknown.")
    elif stability < MIN_STABILITY:
        blockers.append(
            f"Bodies vary: only {percent(stability)} of consecutive responses were identical "
            f"(at least {percent(MIN_STABILITY)} needed); a cache would serve stale or wrong content."
        )
    if blockers:
        reasons.extend(blockers)
        return advice(NONE, 0)

    if done:
        reasons.append(
            f"The body changed {times(len(done))}; it stayed the same for {duration(lifetime)} or more "
            "in three of four stretches."
        )
    else:
        reasons.append(f"The body never changed in {duration(lifetime)} of samples.")
    ttl = step_down(min(lifetime, max_ttl))
    if lifetime > max_ttl:
        reasons.append(f"The TTL is capped at {duration(max_ttl)} (TRAFFIC_RECOMMEND_MAX_TTL_SECONDS).")
    stated = found.explicit_lifetime
    if stated is not None and stated < ttl:
        ttl = step_down(stated)
        reasons.append(f"The responses allow caching for at most {duration(stated)} (their freshness lifetime).")
    if found.no_cache or ttl == 0:
        why = (
            f"{found.no_cache} of {found.responses} responses say Cache-Control: no-cache"
            if found.no_cache
            else "The body or the responses' stated lifetime allows no TTL of a second or more"
        )
        reasons.append(f"{why}: every use must be revalidated.")
        reasons.append(_validators_reason(found))
        return advice(VALIDATORS, ttl)
    if found.vary:
        reasons.append(
            f"Responses vary by {', '.join(found.vary)}: the cache must keep one entry per value of "
            f"{'that request header' if len(found.vary) == 1 else 'those request headers'} (the estimate assumes one)."
        )
    hit_ratio = replay(requests, ttl)["hit_ratio"]
    if gap >= ttl or hit_ratio < MIN_HIT_RATIO:
        reasons.append(
            f"Requests come every {duration(gap)} (median) and a {duration(ttl)} TTL would have served only "
            f"{percent(hit_ratio)} of them from the cache: too rarely hit for a TTL, so validators instead."
        )
        reasons.append(_validators_reason(found))
        return advice(VALIDATORS, ttl)
    reasons.append(f"Cache for {duration(ttl)}: the requests come far more often than the body changes.")
    return advice(TTL, ttl)


def analyse(requests: Sequence[Request], *, max_ttl: int, window: tuple[datetime, datetime]) -> list[Advice]:
    """One recommendation per GET/HEAD route and method of one application's sampled requests (any order)."""
    groups: dict[tuple[str, str], list[Request]] = defaultdict(list)
    for r in requests:
        method = r.method.upper()
        if method in CACHEABLE_METHODS and r.route:
            groups[(r.route, method)].append(r)
    span = {"start": window[0].isoformat(), "end": window[1].isoformat()}
    out: list[Advice] = []
    verdicts: dict[tuple[Any, ...], cachelint.Verdict] = {}
    for route, method in sorted(groups):
        rows = sorted(groups[(route, method)], key=lambda r: r.at)
        advice = advise(route, method, rows, application_requests=len(requests), max_ttl=max_ttl, verdicts=verdicts)
        advice.estimate["window"] = span
        out.append(advice)
    return out
