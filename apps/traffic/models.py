"""Traffic: what applications' requests and calls looked like, from OpenTelemetry spans and request samples.

Nothing here stores a span: spans are rolled up as they are flushed from the ingestion buffer. A ``RouteRollup`` is
one application's requests to one route template, method and status class in one minute (then hour, then day):
count, errors, bytes and a mergeable latency sketch (DDSketch, serialized), so quantiles over any range come from
merging sketches. An ``EdgeRollup`` is the calls from one node of the service graph to another in one bucket, with
the caller's and the callee's latency sketches; nodes are applications (``app:<id>``) or virtual ones for what
sends no spans (``peer:<peer.service>``, ``db:<db.system>``, ``unknown``). A ``Sample`` is one raw request as the
agent saw it (route, status, size, body hash and the caching-relevant headers), kept briefly for the caching
recommendations' replay. A ``Recommendation`` is ICC's caching advice for one route (proposed, then accepted or
rejected by a person); the accepted ones become a versioned ``CacheConfig`` served to the application.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Level(models.TextChoices):
    MINUTE = "m", "Minute"
    HOUR = "h", "Hour"
    DAY = "d", "Day"


LEVEL_SECONDS = {Level.MINUTE: 60, Level.HOUR: 3600, Level.DAY: 86400}


class RouteRollup(models.Model):
    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=1, choices=Level.choices)
    bucket = models.DateTimeField()  # the start of the minute, hour or day (UTC)
    route = models.CharField(max_length=300)  # the route template (/users/{id}); never a raw path
    method = models.CharField(max_length=10)
    status_class = models.PositiveSmallIntegerField()  # 1..5 (2 for 2xx), 0 when unknown
    count = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)  # 5xx or a span status of ERROR
    bytes = models.BigIntegerField(default=0)
    sketch = models.BinaryField(default=b"")  # DDSketch of durations in milliseconds (apps.traffic.sketch)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("application", "level", "bucket", "route", "method", "status_class"),
                name="traffic_route_rollup_unique",
            )
        ]
        indexes = [models.Index(fields=("level", "bucket"), name="traffic_route_level_bucket")]

    def __str__(self) -> str:
        return f"{self.application_id} {self.method} {self.route} {self.status_class}xx @ {self.bucket}"


class EdgeRollup(models.Model):
    id = models.BigAutoField(primary_key=True)
    level = models.CharField(max_length=1, choices=Level.choices)
    bucket = models.DateTimeField()
    source = models.CharField(max_length=300)  # app:<id> | peer:<name> | db:<system> | unknown
    target = models.CharField(max_length=300)
    source_application = models.ForeignKey(
        "clusters.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    target_application = models.ForeignKey(
        "clusters.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    unpaired = models.BigIntegerField(default=0)  # calls whose other side never arrived within the pairing window
    client_sketch = models.BinaryField(default=b"")  # latency as the caller saw it
    server_sketch = models.BinaryField(default=b"")  # as the callee saw it (empty for virtual callees)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("level", "bucket", "source", "target"), name="traffic_edge_rollup_unique")
        ]
        indexes = [models.Index(fields=("level", "bucket"), name="traffic_edge_level_bucket")]

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} @ {self.bucket}"


class Sample(models.Model):
    """One request as an agent sampled it (what traces do not carry), kept ``TRAFFIC_SAMPLE_RETENTION_HOURS``."""

    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    route = models.CharField(max_length=300)
    method = models.CharField(max_length=10)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    size = models.BigIntegerField(default=0)
    body_hash = models.CharField(max_length=64, blank=True)
    cache_control = models.CharField(max_length=300, blank=True)
    expires = models.CharField(max_length=100, blank=True)
    etag = models.CharField(max_length=200, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    vary = models.CharField(max_length=200, blank=True)
    set_cookie = models.BooleanField(default=False)
    authorization = models.BooleanField(default=False)  # the request carried Authorization

    class Meta:
        indexes = [models.Index(fields=("application", "route", "at"), name="traffic_sample_app_route_at")]

    def __str__(self) -> str:
        return f"{self.application_id} {self.method} {self.route} {self.status}"


class RecommendationKind(models.TextChoices):
    TTL = "ttl", "Cache for a TTL"
    VALIDATORS = "validators", "Validators (ETag / Last-Modified, 304)"
    NONE = "none", "Do not cache"


class RecommendationState(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


class Recommendation(models.Model):
    """What ICC advises for caching one route and method of an application (apps.traffic.recommend), with the
    evidence and a replay estimate. At most one proposal and one accepted row per route and method at a time; the
    accepted ones make up the application's :class:`CacheConfig`."""

    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=300)
    method = models.CharField(max_length=10)
    kind = models.CharField(max_length=10, choices=RecommendationKind.choices)
    ttl_seconds = models.PositiveIntegerField(default=0)  # kind ttl: the TTL; validators: the TTL it was judged by
    reasons = models.JSONField(default=list)  # plain sentences with the evidence
    evidence = models.JSONField(default=dict)  # the numbers behind the reasons (samples, stability, gap, skew...)
    estimate = models.JSONField(default=dict)  # hit_ratio, origin_requests_saved, latency_saved_ms, stale_hits...
    state = models.CharField(max_length=10, choices=RecommendationState.choices, default=RecommendationState.PROPOSED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("application", "route", "method"),
                condition=models.Q(state="proposed"),
                name="traffic_recommendation_one_proposed",
            ),
            models.UniqueConstraint(
                fields=("application", "route", "method"),
                condition=models.Q(state="accepted"),
                name="traffic_recommendation_one_accepted",
            ),
        ]
        indexes = [models.Index(fields=("application", "state"), name="traffic_rec_app_state")]

    def __str__(self) -> str:
        return f"{self.method} {self.route}: {self.kind}"

    def config_entry(self) -> dict[str, object] | None:
        """Rule: this route's line in the served cache configuration, once accepted — a TTL or validators; advice
        not to cache configures nothing (accepting it only withdraws what was accepted for the route before)."""
        if self.kind == RecommendationKind.TTL:
            return {"route": self.route, "method": self.method, "ttl_seconds": self.ttl_seconds}
        if self.kind == RecommendationKind.VALIDATORS:
            return {"route": self.route, "method": self.method, "validators": True}
        return None


class CacheConfig(models.Model):
    """One version of an application's accepted caching configuration, as served at /traffic/v1/cache-config."""

    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    routes = models.JSONField(default=list)  # [{route, method, ttl_seconds | validators}]
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("application", "version"), name="traffic_cache_config_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.application_id} v{self.version}"
