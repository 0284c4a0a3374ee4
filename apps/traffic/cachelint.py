"""What the HTTP caching rules (RFC 9111) say about a route's sampled responses, read by PyPI ``httplint``.

Each distinct set of caching-relevant headers (Cache-Control, Expires, Vary, whether ETag and Last-Modified are
present, the status, the method and whether the request carried Authorization) is linted once: httplint parses the
fields and runs its cache checker (storability, Vary: *, freshness lifetime, no-cache), and this module counts, over
all the route's responses, how many say what. Set-Cookie is only a presence flag in a sample, so it is counted
directly. A request with Authorization makes the response depend on it unless the response says ``public``
explicitly (a stricter reading than RFC 9111 §3.5, which also lets ``must-revalidate`` and ``s-maxage`` through).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from httplint import HttpRequestLinter, HttpResponseLinter
from httplint.note import categories

MAX_NOTES = 8


class Response(Protocol):
    """What a sample says about one response (read only; apps.traffic.recommend.Request is one)."""

    @property
    def at(self) -> float: ...

    @property
    def method(self) -> str: ...

    @property
    def status(self) -> int: ...

    @property
    def cache_control(self) -> str: ...

    @property
    def expires(self) -> str: ...

    @property
    def etag(self) -> str: ...

    @property
    def last_modified(self) -> str: ...

    @property
    def vary(self) -> str: ...

    @property
    def set_cookie(self) -> bool: ...

    @property
    def authorization(self) -> bool: ...


@dataclass(frozen=True)
class Verdict:
    """httplint's reading of one set of headers."""

    no_store: bool
    private: bool
    public: bool
    no_cache: bool
    vary_star: bool
    vary: tuple[str, ...]  # the request headers the response varies by (lower case), but *
    store_shared: bool
    explicit_lifetime: int | None  # seconds a shared cache may keep it (max-age, s-maxage, Expires); None if unsaid
    etag: bool
    last_modified: bool
    notes: tuple[str, ...]


@dataclass
class Findings:
    """Counts over a route's responses (each count is of responses, out of ``responses``)."""

    responses: int = 0
    set_cookie: int = 0
    no_store: int = 0
    private: int = 0
    no_cache: int = 0
    vary_star: int = 0
    authorization_dependent: int = 0
    etag: int = 0
    last_modified: int = 0
    explicit_lifetime: int | None = None  # the shortest stated lifetime
    vary: list[str] = field(default_factory=list)  # request headers any response varies by
    notes: list[str] = field(default_factory=list)

    def as_evidence(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "set_cookie": self.set_cookie,
            "no_store": self.no_store,
            "private": self.private,
            "no_cache": self.no_cache,
            "vary_star": self.vary_star,
            "authorization_dependent": self.authorization_dependent,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "explicit_lifetime_s": self.explicit_lifetime,
            "vary": self.vary,
            "notes": self.notes,
        }


def _key(r: Response) -> tuple[Any, ...]:
    return (
        r.method,
        r.status,
        r.cache_control,
        r.expires,
        r.vary,
        r.authorization,
        bool(r.etag),
        bool(r.last_modified),
    )


def lint(r: Response) -> Verdict:
    """Lint one response's caching headers (as if answering ``r.method`` on the route) with httplint."""
    request = HttpRequestLinter()
    request.process_request_topline(r.method.encode(), b"http://application.invalid/", b"HTTP/1.1")
    request_headers = [(b"Host", b"application.invalid")]
    if r.authorization:
        request_headers.append((b"Authorization", b"Bearer sampled"))
    request.process_headers(request_headers)
    request.finish_content(True)
    response = HttpResponseLinter(start_time=r.at, _related=request)
    response.process_response_topline(b"HTTP/1.1", str(r.status).encode(), b"")
    headers = [("Date", formatdate(r.at, usegmt=True))]
    for name, value in (
        ("Cache-Control", r.cache_control),
        ("Expires", r.expires),
        ("ETag", r.etag),
        ("Last-Modified", r.last_modified),
        ("Vary", r.vary),
    ):
        if value:
            headers.append((name, value))
    response.process_headers([(n.encode(), v.encode("latin-1", "replace")) for n, v in headers])
    response.finish_content(True)
    caching = response.caching
    directives = dict(getattr(caching, "cc_dict", {}) or {})
    varies = getattr(caching, "vary_value", None) or ()
    lifetime: int | None = None
    if getattr(caching, "has_explicit_freshness", False) and not getattr(caching, "freshness_unknown", False):
        lifetime = max(0, int(caching.freshness_lifetime_shared))
    notes = tuple(
        str(note.summary)
        for note in response.notes
        if note.category in (categories.CACHING, categories.VALIDATION) or note.__class__.__name__ == "VARY_ASTERISK"
    )
    return Verdict(
        no_store="no-store" in directives,
        private="private" in directives,
        public="public" in directives,
        no_cache="no-cache" in directives,
        vary_star="*" in varies,
        vary=tuple(sorted(str(v).lower() for v in varies if v != "*")),
        store_shared=bool(caching.store_shared),
        explicit_lifetime=lifetime,
        etag=getattr(caching, "etag_value", None) is not None,
        last_modified=getattr(caching, "lm_value", None) is not None,
        notes=notes,
    )


def findings(responses: Iterable[Response], cache: dict[tuple[Any, ...], Verdict] | None = None) -> Findings:
    """Count what the caching rules say about these responses (one httplint run per distinct header set)."""
    verdicts = cache if cache is not None else {}
    out, here = Findings(), set()
    for r in responses:
        key = _key(r)
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = verdicts[key] = lint(r)
        if key not in here:
            here.add(key)
            out.notes.extend(n for n in verdict.notes if n not in out.notes)
            del out.notes[MAX_NOTES:]
            out.vary = sorted({*out.vary, *verdict.vary})
        out.responses += 1
        out.set_cookie += int(r.set_cookie)
        out.no_store += int(verdict.no_store)
        out.private += int(verdict.private)
        out.no_cache += int(verdict.no_cache)
        out.vary_star += int(verdict.vary_star)
        out.authorization_dependent += int(r.authorization and not verdict.public and not verdict.private)
        out.etag += int(verdict.etag)
        out.last_modified += int(verdict.last_modified)
        if verdict.explicit_lifetime is not None:
            current = out.explicit_lifetime
            out.explicit_lifetime = (
                verdict.explicit_lifetime if current is None else min(current, verdict.explicit_lifetime)
            )
    return out
