"""The validating admission webhook: one AdmissionReview v1 in, one verdict out, from memory only.

The API server of a registered cluster posts each create or update of a Deployment, StatefulSet or DaemonSet to
``/compliance/admission/<cluster id>/<token>``. The token (see :meth:`AdmissionWebhook.token`) is compared in
constant time with the one in the in-memory snapshot (:mod:`apps.compliance.cache`); so are the bindings and
exceptions, so answering never waits on the database. Only ``warn`` and ``enforce`` bindings take part (``audit``
ones only record, in the evaluations). A failing ``enforce`` check denies, with a message naming each failing
check and its remediation; a failing ``warn`` check adds a warning. An approved, unexpired exception covering the
object lets it through. Everything else is allowed.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apps.clusters.kinds import application_of
from apps.compliance import cel
from apps.compliance.cache import Rule, Snapshot, current
from apps.compliance.checks import Status, check_get, evaluate
from apps.compliance.metrics import ADMISSION, ADMISSION_SECONDS
from apps.compliance.models import Mode
from apps.compliance.notify import Denial
from apps.core import calendar
from apps.core.access import Scope, ScopeKind

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024  # the API server's own request limit is 3 MiB of object
ADMITTED = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}
OPERATIONS = {"CREATE", "UPDATE"}
MAX_MESSAGE = 3000
MAX_WARNINGS = 20
MAX_WARNING_LENGTH = 250  # the API server may truncate longer warnings
MODE_RANK = {Mode.AUDIT: 0, Mode.WARN: 1, Mode.ENFORCE: 2}


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 request (answered 400, naming what is wrong)."""


class BadToken(PermissionError):
    """Unknown cluster or wrong path token (answered 403)."""


@dataclass(frozen=True)
class Failure:
    check_id: str
    policy: str
    mode: str
    message: str
    remediation: str
    title: str
    held: str = ""  # why an enforced check only warns (a maintenance window)


def _parse(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadReview(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReview("the body is not JSON") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise BadReview("kind: expected AdmissionReview")
    if review.get("apiVersion") != "admission.k8s.io/v1":
        raise BadReview("apiVersion: expected admission.k8s.io/v1")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid: missing")
    return request


def _verdicts(rule: Rule, obj: dict[str, Any], request: dict[str, Any]) -> list[Any]:
    if rule.compiled is None:
        return evaluate(obj, rule.checks, rule.params or None)
    match = rule.match
    if not cel.matches(obj, match.get("kinds") or None, match.get("namespaces") or None, match.get("labels") or None):
        return []
    cel_request = {"operation": request.get("operation"), "userInfo": request.get("userInfo") or {}}
    results = rule.compiled.evaluate(obj, params=rule.params or None, request=cel_request)
    return [r for r in results if not rule.check_id or r.check_id == rule.check_id]


def _images(obj: dict[str, Any]) -> list[str]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [
        str(c.get("image", ""))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]


class _Maintenance:
    """Asked of the calendar once per request, and only when a binding wants to know (from memory either way)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.answer: str | None = None

    def note(self) -> str:
        if self.answer is None:
            window = calendar.in_maintenance(self.scope)
            self.answer = f"enforce held to warn: maintenance until {window.ends:%Y-%m-%d %H:%M}Z" if window else ""
        return self.answer


def failures(snapshot: Snapshot, cluster_id: int, obj: dict[str, Any], request: dict[str, Any]) -> list[Failure]:
    """The failing ``warn``/``enforce`` checks on ``obj`` that no active exception covers, strictest mode each."""
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or request.get("namespace") or "")
    name = str(metadata.get("name") or request.get("name") or metadata.get("generateName") or "")
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    application = application_of(name, labels)[0]
    maintenance = _Maintenance(Scope(ScopeKind.APPLICATION, str(cluster_id), namespace, application))
    chosen: dict[str, tuple[Any, str, str]] = {}
    for rule in snapshot.rules:
        if not rule.scope.covers(str(cluster_id), namespace, application):
            continue
        mode, held = rule.mode, ""
        if mode == Mode.ENFORCE and rule.warn_in_maintenance and maintenance.note():
            mode, held = Mode.WARN, maintenance.note()
        for verdict in _verdicts(rule, obj, request):
            known = chosen.get(verdict.check_id)
            if known is None or MODE_RANK[Mode(mode)] > MODE_RANK[Mode(known[1])]:
                chosen[verdict.check_id] = (verdict, mode, held)
    exceptions = snapshot.active_exceptions(datetime.now(UTC))
    images = _images(obj)
    found = []
    for check_id, (verdict, mode, held) in chosen.items():
        if verdict.status != Status.FAIL:
            continue
        if any(
            e.covers(
                check_id=check_id,
                policy=verdict.policy,
                cluster_id=cluster_id,
                namespace=namespace,
                application=application,
                name=name,
                labels=labels,
                images=images,
            )
            for e in exceptions
        ):
            continue
        try:
            check = check_get(check_id)
            title, remediation = check.title, check.remediation
        except KeyError:  # a CEL validation: its message is all there is
            title, remediation = check_id, ""
        found.append(Failure(check_id, verdict.policy, mode, verdict.message, remediation, title, held))
    return sorted(found, key=lambda f: f.check_id)


def _deny_message(kind: str, name: str, denied: list[Failure]) -> str:
    lines = [f"ICC compliance denied {kind} {name!r}: {len(denied)} enforced check(s) failed."]
    for failure in denied:
        line = f"[{failure.check_id}] {failure.title}: {failure.message}"
        if failure.remediation:
            line += f" Fix: {failure.remediation}"
        lines.append(line)
    message = "\n".join(lines)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _warning(failure: Failure) -> str:
    text = f"ICC compliance [{failure.check_id}] {failure.title}: {failure.message}"
    if failure.held:
        text = f"{text} ({failure.held})"
    return text if len(text) <= MAX_WARNING_LENGTH else text[: MAX_WARNING_LENGTH - 1] + "…"


def decide(
    cluster_id: int, request: dict[str, Any], snapshot: Snapshot, denials: list[Denial] | None = None
) -> dict[str, Any]:
    """The AdmissionResponse for one request (uid, allowed, status, warnings). A denial is appended to ``denials``
    (when given) for the caller to hand off after answering (:func:`apps.compliance.tasks.admission_denied_later`)."""
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    kind = request.get("kind") or {}
    if request.get("operation") not in OPERATIONS or (kind.get("group"), kind.get("kind")) not in ADMITTED:
        return response
    obj = request.get("object")
    if not isinstance(obj, dict):
        return response
    found = failures(snapshot, cluster_id, obj, request)
    denied = [f for f in found if f.mode == Mode.ENFORCE]
    warned = [f for f in found if f.mode == Mode.WARN]
    if warned:
        response["warnings"] = [_warning(f) for f in warned[:MAX_WARNINGS]]
    if denied:
        metadata = obj.get("metadata") or {}
        name = f"{metadata.get('namespace') or request.get('namespace') or ''}/{metadata.get('name') or ''}"
        response["allowed"] = False
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": _deny_message(str(kind.get("kind")), name, denied),
        }
        logger.info(
            "admission denied %s %s on cluster %s: %s",
            kind.get("kind"),
            name,
            cluster_id,
            ", ".join(f.check_id for f in denied),
        )
        if denials is not None:
            denials.append(_denial(cluster_id, obj, request, denied))
    return response


def _denial(cluster_id: int, obj: dict[str, Any], request: dict[str, Any], denied: list[Failure]) -> Denial:
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name") or request.get("name") or metadata.get("generateName") or "")
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    return Denial(
        cluster_id=cluster_id,
        namespace=str(metadata.get("namespace") or request.get("namespace") or ""),
        kind=str((request.get("kind") or {}).get("kind") or ""),
        name=name,
        application=application_of(name, labels)[0],
        checks=tuple(f.check_id for f in denied),
        user=str((request.get("userInfo") or {}).get("username") or "")[:200],
    )


def review(cluster_id: int, token: str, body: bytes, denials: list[Denial] | None = None) -> dict[str, Any]:
    """Check the caller's token, then answer one AdmissionReview (raises BadToken or BadReview); a denial is
    appended to ``denials`` (see :func:`decide`)."""
    started = time.perf_counter()
    snapshot = current()
    expected = snapshot.tokens.get(cluster_id)
    if expected is None or not hmac.compare_digest(expected.encode(), token.encode()):
        ADMISSION.labels(decision="refused").inc()
        raise BadToken("unknown cluster or wrong webhook token")
    try:
        request = _parse(body)
    except BadReview:
        ADMISSION.labels(decision="bad_request").inc()
        raise
    response = decide(cluster_id, request, snapshot, denials)
    decision = "allowed" if response["allowed"] else "denied"
    if response["allowed"] and response.get("warnings"):
        decision = "warned"
    ADMISSION.labels(decision=decision).inc()
    ADMISSION_SECONDS.observe(time.perf_counter() - started)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
