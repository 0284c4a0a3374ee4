"""Compliance policies and bindings API: the library (everyone who reads somewhere), custom CEL policies (global
``configure`` to write), bindings (``configure`` at the binding's scope), tests before saving and dry runs (what
the caller may read only). Views parse input and call the services; a CEL compile error is a 400 naming the field
with its ``position`` (line and column)."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.compliance import dryrun, policy_selectors
from apps.compliance.api.policy_serializers import (
    ComplianceBindingSerializer,
    ComplianceBindingWriteSerializer,
    ComplianceDryRunSerializer,
    CompliancePolicyDeleteSerializer,
    CompliancePolicySerializer,
    CompliancePolicyTestResultSerializer,
    CompliancePolicyTestSerializer,
    CompliancePolicyWriteSerializer,
)
from apps.compliance.cel import CelCompileError
from apps.compliance.models import Binding, Mode, Policy, PolicyKind
from apps.compliance.services import policies as services
from apps.core.access import Action, ScopeKind
from apps.core.api.filters import IdFilter, SearchFilter, StrictBooleanFilter
from apps.core.api.permissions import OWN
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError


class PolicyFilter(django_filters.FilterSet):
    q = SearchFilter(("key", "name"), max_length=100)
    kind = django_filters.ChoiceFilter(choices=PolicyKind.choices)
    enabled = StrictBooleanFilter()

    class Meta:
        model = Policy
        fields = ("q", "kind", "enabled")


class BindingFilter(django_filters.FilterSet):
    policy = IdFilter()
    mode = django_filters.ChoiceFilter(choices=Mode.choices)
    scope_kind = django_filters.ChoiceFilter(choices=ScopeKind.choices)
    cluster = django_filters.CharFilter(field_name="scope_cluster", max_length=32)
    namespace = django_filters.CharFilter(field_name="scope_namespace", max_length=253)
    application = django_filters.CharFilter(field_name="scope_application", max_length=253)
    enabled = StrictBooleanFilter()

    class Meta:
        model = Binding
        fields = ("policy", "mode", "scope_kind", "cluster", "namespace", "application", "enabled")


class CelPositionMixin:
    """A CEL compile error answers with the core error body plus ``error.position`` (1-based line and column)."""

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        if isinstance(exc, CelCompileError) and isinstance(response.data, dict) and "error" in response.data:
            response.data["error"]["position"] = {"field": exc.field, "line": exc.line, "column": exc.column}
        return response


def _body(serializer_class: Any, request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data if isinstance(request.data, dict) else {})
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _workload(request: Request, pk: int) -> Any:
    found = policy_selectors.workloads(request.user).filter(pk=pk).first()
    if found is None:
        raise DomainError(f"no workload {pk} with a pod template (or you cannot see it)", field="workload")
    return found


def _policy(request: Request, pk: Any) -> Policy:
    found = policy_selectors.policy(request.user, pk) if pk is not None else None
    if found is None:
        raise DomainError(f"no policy {pk} (or you cannot see it)", field="policy")
    return found


class PolicyViewSet(
    CelPositionMixin, RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The policy library: built-ins (their checks documented) and custom CEL policies, with the number of bindings
    you may read. Filters: q (key or name), kind, enabled."""

    serializer_class = CompliancePolicySerializer
    filterset_class = PolicyFilter
    action_rights = {"create": OWN, "test": Action.READ, "dry_run": Action.READ}

    def get_restricted_queryset(self, user: Any) -> Any:
        return policy_selectors.policies(user)

    def _fresh(self, policy: Policy) -> dict[str, Any]:
        return dict(CompliancePolicySerializer(policy_selectors.policies(self.request.user).get(pk=policy.pk)).data)

    @extend_schema(request=CompliancePolicyWriteSerializer, responses={201: CompliancePolicySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        policy = services.policy_create(by=request.user, **_body(CompliancePolicyWriteSerializer, request))
        return Response(self._fresh(policy), status=status.HTTP_201_CREATED)

    @extend_schema(request=CompliancePolicyWriteSerializer, responses=CompliancePolicySerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Custom policies: any field but the key (recompiled, versioned); built-ins: ``enabled`` only."""
        policy = self.get_object()
        values = _body(CompliancePolicyWriteSerializer, request)
        if "key" in values and values.pop("key") != policy.key:
            raise DomainError("a policy's key cannot change (create a new policy)", field="key")
        enabled = values.pop("enabled", None)
        if values:
            policy = services.policy_update(policy=policy, by=request.user, **values)
        if enabled is not None:
            policy = services.policy_set_enabled(policy=policy, enabled=enabled, by=request.user)
        return Response(self._fresh(policy))

    @extend_schema(request=CompliancePolicyWriteSerializer, responses=CompliancePolicySerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(
        request=CompliancePolicyDeleteSerializer,
        parameters=[OpenApiParameter("confirm", str, description="the policy's key, typed to confirm")],
        responses={204: None},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        policy = self.get_object()
        confirm = _body(CompliancePolicyDeleteSerializer, request)["confirm"] or request.query_params.get("confirm", "")
        services.policy_delete(policy=policy, confirm=confirm, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=CompliancePolicyTestSerializer, responses=CompliancePolicyTestResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Judge the policy, with any unsaved fields given, against one observed workload you may read (nothing is
        saved); a runtime error on the workload is an ``error`` verdict."""
        policy = self.get_object()
        values = _body(CompliancePolicyTestSerializer, request)
        workload = _workload(request, values.pop("workload"))
        answer = dryrun.stored_test(policy=policy, workload=workload, by=request.user, **values)
        return Response(CompliancePolicyTestResultSerializer(answer).data)

    @extend_schema(request=None, responses=ComplianceDryRunSerializer)
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request, pk: str | None = None) -> Response:
        """What enabling the policy would do: each workload you may read that its enabled bindings would fail or
        deny, with the failing checks (failures an active exception covers are counted, not listed)."""
        run = dryrun.policy_dry_run(viewer=request.user, policy=self.get_object())
        return Response(ComplianceDryRunSerializer.of(run))


class BindingViewSet(
    CelPositionMixin,
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Where policies apply: a policy (or one check of it) at a scope in a mode (audit, warn, enforce), with
    parameters. Filters: policy, mode, scope_kind, cluster, namespace, application, enabled. Writes need
    ``configure`` at the binding's scope (the service checks it, at the old and the new scope when it moves)."""

    serializer_class = ComplianceBindingSerializer
    filterset_class = BindingFilter
    # Checked by the service at the binding's scope (and the new one): a visible binding is the only precondition.
    action_rights = {"create": OWN, "update": OWN, "partial_update": OWN, "destroy": OWN, "dry_run": Action.READ}

    def get_restricted_queryset(self, user: Any) -> Any:
        return policy_selectors.bindings(user).order_by("-id")

    def _fresh(self, binding: Binding) -> dict[str, Any]:
        return dict(ComplianceBindingSerializer(Binding.objects.select_related("policy").get(pk=binding.pk)).data)

    @extend_schema(request=ComplianceBindingWriteSerializer, responses={201: ComplianceBindingSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        values = _body(ComplianceBindingWriteSerializer, request)
        policy = _policy(request, values.pop("policy", None))
        binding = services.binding_create(policy=policy, by=request.user, **values)
        return Response(self._fresh(binding), status=status.HTTP_201_CREATED)

    @extend_schema(request=ComplianceBindingWriteSerializer, responses=ComplianceBindingSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        binding = self.get_object()
        values = _body(ComplianceBindingWriteSerializer, request)
        if "policy" in values and values.pop("policy") != binding.policy_id:
            raise DomainError("a binding's policy cannot change (create a new binding)", field="policy")
        saved = services.binding_update(binding=binding, by=request.user, **values)
        return Response(self._fresh(saved))

    @extend_schema(request=ComplianceBindingWriteSerializer, responses=ComplianceBindingSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.binding_delete(binding=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ComplianceBindingWriteSerializer, responses=ComplianceDryRunSerializer)
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request) -> Response:
        """What a binding given as unsaved values would do (e.g. before creating it or switching it to ``enforce``):
        each workload you may read in its scope that would fail or be denied, with the failing checks."""
        values = _body(ComplianceBindingWriteSerializer, request)
        policy = _policy(request, values.pop("policy", None))
        return Response(
            ComplianceDryRunSerializer.of(dryrun.binding_dry_run(viewer=request.user, policy=policy, **values))
        )
