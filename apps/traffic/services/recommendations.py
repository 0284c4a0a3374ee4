"""Caching recommendations: computing them from an application's request samples, and people deciding on them.

``recommendations_compute`` analyses the last ``TRAFFIC_RECOMMEND_WINDOW_HOURS`` of samples
(:mod:`apps.traffic.recommend`) and refreshes the proposals: a route whose advice is unchanged keeps its row (its
evidence and estimate are updated); a changed one supersedes the old proposal with a new one; a decision already
taken on the same advice (accepted, or rejected) is kept and not proposed again. Computing needs the operator role
on the application (ICC's daily task computes as itself).

``recommendation_accept`` and ``recommendation_reject`` need configure rights on the application, are audited
(``traffic.recommendation.accept`` / ``.reject``) and, whenever the accepted set's served routes change (accepting
a TTL or validators, or rejecting what was accepted), write a new :class:`CacheConfig` version, which the
application reads at ``/traffic/v1/cache-config``; open Traffic tabs refresh after commit. Each runs under a
lock of the application's row, so versions are numbered without gaps or races.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.audit.services import audit_record
from apps.clusters.models import Application
from apps.core.access import Action, can
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.events import publish_many
from apps.traffic import events, recommend
from apps.traffic.models import CacheConfig, Recommendation, RecommendationState, Sample

MAX_SAMPLES = 200_000  # the newest samples of the window, so one computation stays bounded
SAMPLE_FIELDS = (
    "at",
    "route",
    "method",
    "status",
    "duration_ms",
    "size",
    "body_hash",
    "cache_control",
    "expires",
    "etag",
    "last_modified",
    "vary",
    "set_cookie",
    "authorization",
)
State = RecommendationState


def audit_scope(application: Application) -> dict[str, str]:
    return {"cluster": str(application.cluster_id), "namespace": application.namespace, "application": application.name}


def _announce(application_id: int) -> None:
    """After commit, the application's open Traffic tabs re-read their recommendations."""
    publish_many([(events.application(application_id), {"application": application_id})])


def _person(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


def _allow(by: Any, action: str, obj: Any, what: str) -> None:
    if by is not None and not can(by, action, obj):
        raise ForbiddenError(f"your role does not allow {what} for this application")


def sampled_requests(application: Application, since: datetime, until: datetime) -> list[recommend.Request]:
    """The application's samples in [since, until), newest ``MAX_SAMPLES`` of them, as analysis input."""
    rows = (
        Sample.objects.filter(application=application, at__gte=since, at__lt=until)
        .order_by("-at")
        .values_list(*SAMPLE_FIELDS)[:MAX_SAMPLES]
    )
    return [recommend.Request(row[0].timestamp(), *row[1:]) for row in rows]


def _same(row: Recommendation, advice: recommend.Advice) -> bool:
    return row.kind == advice.kind and row.ttl_seconds == advice.ttl_seconds


def _refresh(row: Recommendation, advice: recommend.Advice, now: datetime) -> None:
    row.reasons, row.evidence, row.estimate, row.computed_at = advice.reasons, advice.evidence, advice.estimate, now
    row.save(update_fields=["reasons", "evidence", "estimate", "computed_at"])


def _lock(application: Application) -> None:
    Application.objects.select_for_update().filter(pk=application.pk).values_list("pk", flat=True).first()


def recommendations_compute(*, application: Application, by: Any = None, now: datetime | None = None) -> int:
    """Refresh the application's proposals from its samples; returns how many routes were analysed."""
    _allow(by, Action.ACT, application, "computing caching recommendations")
    now = now or timezone.now()
    since = now - timedelta(hours=settings.TRAFFIC_RECOMMEND_WINDOW_HOURS)
    advices = recommend.analyse(
        sampled_requests(application, since, now),
        max_ttl=settings.TRAFFIC_RECOMMEND_MAX_TTL_SECONDS,
        window=(since, now),
    )
    with transaction.atomic():
        _lock(application)
        rows: dict[tuple[str, str], list[Recommendation]] = {}
        live = Recommendation.objects.filter(application=application).exclude(state=State.SUPERSEDED).order_by("-id")
        for row in live:
            rows.setdefault((row.route, row.method), []).append(row)
        superseded: list[int] = []
        for advice in advices:
            existing = rows.pop((advice.route, advice.method), [])
            proposed = next((r for r in existing if r.state == State.PROPOSED), None)
            decided = next((r for r in existing if r.state != State.PROPOSED and _same(r, advice)), None)
            if decided is not None:  # already accepted or rejected as it stands: keep the decision
                if decided.state == State.ACCEPTED:
                    _refresh(decided, advice, now)
                if proposed is not None:
                    superseded.append(proposed.pk)
            elif proposed is not None and _same(proposed, advice):
                _refresh(proposed, advice, now)
            else:
                if proposed is not None:  # before the new one: one proposal per route at a time
                    Recommendation.objects.filter(pk=proposed.pk).update(state=State.SUPERSEDED)
                Recommendation.objects.create(
                    application=application,
                    route=advice.route,
                    method=advice.method,
                    kind=advice.kind,
                    ttl_seconds=advice.ttl_seconds,
                    reasons=advice.reasons,
                    evidence=advice.evidence,
                    estimate=advice.estimate,
                    computed_at=now,
                )
        # Proposals for routes no longer sampled in the window are out of date; decisions stay.
        superseded += [r.pk for gone in rows.values() for r in gone if r.state == State.PROPOSED]
        Recommendation.objects.filter(pk__in=superseded).update(state=State.SUPERSEDED)
        if _person(by) is not None:
            audit_record(
                action="traffic.recommendation.compute",
                target=application,
                scope=audit_scope(application),
                metadata={"routes": len(advices), "window_hours": settings.TRAFFIC_RECOMMEND_WINDOW_HOURS},
            )
        _announce(application.pk)
    return len(advices)


def served_routes(application: Application) -> list[dict[str, object]]:
    """The routes the accepted recommendations configure (``do not cache`` ones configure nothing)."""
    accepted = Recommendation.objects.filter(application=application, state=State.ACCEPTED).order_by("route", "method")
    return [entry for row in accepted if (entry := row.config_entry()) is not None]


def _new_version(application: Application, by: Any) -> CacheConfig | None:
    """A new configuration version when the served routes changed (None when they did not)."""
    routes = served_routes(application)
    latest = CacheConfig.objects.filter(application=application).order_by("-version").first()
    if latest is not None and latest.routes == routes:
        return None
    if latest is None and not routes:
        return None
    version = (CacheConfig.objects.filter(application=application).aggregate(v=Max("version"))["v"] or 0) + 1
    return CacheConfig.objects.create(application=application, version=version, routes=routes, created_by=_person(by))


def _decide(recommendation: Recommendation, allowed: tuple[str, ...]) -> Recommendation:
    _lock(recommendation.application)
    locked = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
    if locked.state not in allowed:
        raise ConflictError(f"this recommendation is {locked.state}", field="state")
    return locked


def _audit(action: str, row: Recommendation, config: CacheConfig | None, reason: str) -> None:
    audit_record(
        action=f"traffic.recommendation.{action}",
        target=row,
        scope=audit_scope(row.application),
        metadata={
            "route": row.route,
            "method": row.method,
            "kind": row.kind,
            "ttl_seconds": row.ttl_seconds,
            "config_version": config.version if config is not None else None,
        },
        message=reason[:500],
    )


def _reason(reason: Any) -> str:
    return reason.strip() if isinstance(reason, str) else ""


def recommendation_accept(*, recommendation: Recommendation, reason: str = "", by: Any) -> Recommendation:
    """Accept a proposal: it replaces what was accepted for its route, and the configuration gets a new version."""
    _allow(by, Action.CONFIGURE, recommendation, "deciding on caching recommendations")
    with transaction.atomic():
        locked = _decide(recommendation, (State.PROPOSED,))
        Recommendation.objects.filter(
            application_id=locked.application_id, route=locked.route, method=locked.method, state=State.ACCEPTED
        ).update(state=State.SUPERSEDED)
        locked.state, locked.decided_by, locked.decided_at = State.ACCEPTED, _person(by), timezone.now()
        locked.decision_reason = _reason(reason)
        locked.save(update_fields=["state", "decided_by", "decided_at", "decision_reason"])
        config = _new_version(locked.application, by)
        _audit("accept", locked, config, locked.decision_reason)
        _announce(locked.application_id)
    return locked


def recommendation_reject(*, recommendation: Recommendation, reason: str, by: Any) -> Recommendation:
    """Reject a proposal, or withdraw an accepted recommendation (its route leaves the configuration)."""
    _allow(by, Action.CONFIGURE, recommendation, "deciding on caching recommendations")
    why = _reason(reason)
    if _person(by) is not None and not why:
        raise DomainError("say why (it goes into the audit trail)", field="reason")
    with transaction.atomic():
        locked = _decide(recommendation, (State.PROPOSED, State.ACCEPTED))
        was_accepted = locked.state == State.ACCEPTED
        locked.state, locked.decided_by, locked.decided_at = State.REJECTED, _person(by), timezone.now()
        locked.decision_reason = why
        locked.save(update_fields=["state", "decided_by", "decided_at", "decision_reason"])
        config = _new_version(locked.application, by) if was_accepted else None
        _audit("reject", locked, config, why)
        _announce(locked.application_id)
    return locked
