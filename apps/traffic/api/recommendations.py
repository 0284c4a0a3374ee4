"""Caching recommendations in the API: ``/api/v1/traffic/recommendations/`` (list with ``application``, ``state``
and ``kind`` filters; one recommendation; ``POST {id}/accept/`` and ``{id}/reject/`` with a reason;
``POST compute/?application=<id>`` to recompute now) and ``/api/v1/traffic/cache-configs/`` (the configuration
versions, filter ``application``).

A caller sees the rows of the applications they may read. Computing needs the operator role on the application;
accepting and rejecting need configure rights there (403 otherwise); deciding on a row that is no longer open is
a 409 naming ``state``.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters.models import Application
from apps.core.access import Action, restrict
from apps.core.api.filters import IdFilter
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.traffic import recommend_selectors as selectors
from apps.traffic.models import CacheConfig, Recommendation, RecommendationKind, RecommendationState
from apps.traffic.services import recommendations as services


class RecommendationSerializer(serializers.ModelSerializer):
    application = serializers.IntegerField(source="application_id", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="plain sentences")
    evidence = serializers.DictField(
        read_only=True, help_text="samples, stability, median_gap_s, skew, lifetime_s and the headers found"
    )
    estimate = serializers.DictField(
        read_only=True,
        help_text="from replaying the sampled requests: hit_ratio, origin_requests_saved, latency_saved_ms, "
        "stale_hits, not_modified, replayed_requests, window",
    )

    class Meta:
        model = Recommendation
        fields = (
            "id",
            "application",
            "route",
            "method",
            "kind",
            "ttl_seconds",
            "reasons",
            "evidence",
            "estimate",
            "state",
            "decided_by",
            "decided_at",
            "decision_reason",
            "computed_at",
        )
        read_only_fields = fields


class CacheConfigSerializer(serializers.ModelSerializer):
    application = serializers.IntegerField(source="application_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    routes = serializers.ListField(
        child=serializers.DictField(), read_only=True, help_text="[{route, method, ttl_seconds | validators}]"
    )

    class Meta:
        model = CacheConfig
        fields = ("id", "application", "version", "routes", "created_by", "created_at")
        read_only_fields = fields


class RecommendationDecisionSerializer(StrictSerializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default="", help_text="why (recorded in the audit trail)"
    )


class RecommendationFilter(django_filters.FilterSet):
    application = IdFilter(field_name="application_id")
    state = django_filters.ChoiceFilter(choices=RecommendationState.choices)
    kind = django_filters.ChoiceFilter(choices=RecommendationKind.choices)

    class Meta:
        model = Recommendation
        fields = ("application", "state", "kind")


class CacheConfigFilter(django_filters.FilterSet):
    application = IdFilter(field_name="application_id")

    class Meta:
        model = CacheConfig
        fields = ("application",)


class ApplicationParam(forms.Form):
    application = forms.IntegerField(min_value=1, max_value=2**63 - 1)


class RecommendationViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """ICC's caching advice per route of an application (a TTL, validators, or not to cache), with its reasons,
    evidence and an estimate from replaying the sampled requests; people accept or reject it."""

    serializer_class = RecommendationSerializer
    filterset_class = RecommendationFilter
    action_rights = {"accept": Action.CONFIGURE, "reject": Action.CONFIGURE, "compute": OWN}

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.recommendations(user)

    def _fresh(self, row: Recommendation) -> dict[str, Any]:
        return dict(RecommendationSerializer(self.get_queryset().get(pk=row.pk)).data)

    def _reason(self, request: Request) -> str:
        body = RecommendationDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return str(body.validated_data["reason"])

    @extend_schema(request=RecommendationDecisionSerializer, responses=RecommendationSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        """Accept a proposal (configure rights): it joins the application's cache configuration, as a new version."""
        row = services.recommendation_accept(
            recommendation=self.get_object(), reason=self._reason(request), by=request.user
        )
        return Response(self._fresh(row))

    @extend_schema(request=RecommendationDecisionSerializer, responses=RecommendationSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject a proposal, or withdraw an accepted recommendation (configure rights; a reason)."""
        row = services.recommendation_reject(
            recommendation=self.get_object(), reason=self._reason(request), by=request.user
        )
        return Response(self._fresh(row))

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("application", OpenApiTypes.INT, required=True)],
        responses=inline_serializer("TrafficRecommendationsComputed", {"routes": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"])
    def compute(self, request: Request) -> Response:
        """Recompute the application's recommendations from its recent samples now (operator role on it)."""
        form = ApplicationParam(request.query_params)
        if not form.is_valid():
            raise ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
        pk = form.cleaned_data["application"]
        application = restrict(request.user, Action.READ, Application.objects.filter(pk=pk)).first()
        if application is None:
            raise NotFound("No such application.")
        routes = services.recommendations_compute(application=application, by=request.user)
        return Response({"routes": routes})


class CacheConfigViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Versions of an application's caching configuration (what ``/traffic/v1/cache-config`` serves), newest
    first."""

    serializer_class = CacheConfigSerializer
    filterset_class = CacheConfigFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.cache_configs(user)
