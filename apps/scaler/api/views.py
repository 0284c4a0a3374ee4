"""Scaler API: policies (CONFIGURE on the application), decisions (read), kill switch (ACT on the application),
global pause (CONFIGURE at global scope), pushed signals (a workload's ServiceAccount token, or an API token with
ACT on the application) and the Alertmanager webhook (an API token with ACT)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.clusters.identity import MachineIdentityAuthentication, machine_identity
from apps.clusters.models import Application, Workload
from apps.core.access import Action, can, restrict
from apps.core.api.permissions import OWN
from apps.core.api.viewsets import ListRetrieveDestroyViewSet, RestrictedViewSetMixin
from apps.core.errors import DomainError, NotFoundError
from apps.scaler import metrics, services
from apps.scaler.api.filters import DecisionFilter, PolicyFilter
from apps.scaler.api.serializers import (
    AcceptedSerializer,
    AlertsResultSerializer,
    DecisionSerializer,
    PauseSerializer,
    PolicySerializer,
    PolicyWriteSerializer,
    SignalBatchSerializer,
    SwitchSerializer,
)
from apps.scaler.models import Decision, ScalerSettings, ScalingPolicy


def _application(user: Any, pk: Any, field: str = "application") -> Application:
    if not isinstance(pk, int) or isinstance(pk, bool):
        raise DomainError("the id of an application", field=field)
    application = restrict(user, Action.READ, Application.objects.select_related("cluster")).filter(pk=pk).first()
    if application is None:
        raise DomainError(f"no application {pk} (or you cannot see it)", field=field)
    return application


def _workload(application: Application, pk: Any) -> Workload | None:
    if pk is None:
        return None
    workload = Workload.objects.filter(pk=pk, application=application).first()
    if workload is None:
        raise DomainError(f"no workload {pk} in application {application}", field="workload")
    return workload


class ScalingPolicyViewSet(ListRetrieveDestroyViewSet):
    """Scaling policies with their schedule windows. Creating, changing and deleting need ``configure`` on the
    application; each change bumps the policy's version and is audited."""

    serializer_class = PolicySerializer
    filterset_class = PolicyFilter
    action_rights = {"create": OWN}  # checked on the named application in create()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_restricted_queryset(self, user: Any) -> Any:
        return restrict(user, Action.READ, ScalingPolicy.objects.all()).prefetch_related("schedules")

    def _fresh(self, policy: ScalingPolicy) -> dict[str, Any]:
        return dict(PolicySerializer(self.get_queryset().get(pk=policy.pk)).data)

    @extend_schema(request=PolicyWriteSerializer, responses={201: PolicySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = PolicyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "application" not in values:
            raise DomainError("required", field="application")
        application = _application(request.user, values.pop("application"))
        if not can(request.user, Action.CONFIGURE, application):
            raise PermissionDenied("configuring scaling needs the admin role on the application")
        if "metrics" not in values:
            raise DomainError("required", field="metrics")
        if "workload" in values:
            values["workload"] = _workload(application, values["workload"])
        policy = services.policy_create(application=application, by=request.user, **values)
        return Response(self._fresh(policy), status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyWriteSerializer, responses=PolicySerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        policy = self.get_object()
        data = PolicyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "application" in values and values.pop("application") != policy.application_id:
            raise DomainError("a policy cannot move to another application", field="application")
        if "workload" in values:
            values["workload"] = _workload(policy.application, values["workload"])
        policy = services.policy_update(policy, by=self.request.user, **values)
        return Response(self._fresh(policy))

    def perform_destroy(self, instance: ScalingPolicy) -> None:
        services.policy_delete(instance, by=self.request.user)


class DecisionViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Every evaluation: inputs, forecast, desired replicas, what was done and why (filters: application, policy,
    outcome, trigger, since)."""

    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return restrict(user, Action.READ, Decision.objects.all())


class KillSwitchView(APIView):
    """``POST {"on": true, "reason": "..."}``: stop (or allow again) every scaler write for the application."""

    @extend_schema(request=SwitchSerializer, responses=PolicySerializer(many=True))
    def post(self, request: Request, pk: int) -> Response:
        application = restrict(request.user, Action.READ, Application.objects.all()).filter(pk=pk).first()
        if application is None:
            raise NotFoundError(f"no application {pk}")
        data = SwitchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.kill_switch_set(application=application, on=values["on"], reason=values["reason"], by=request.user)
        policies = restrict(request.user, Action.READ, ScalingPolicy.objects.filter(application=application))
        return Response(PolicySerializer(policies.prefetch_related("schedules"), many=True).data)


class GlobalPauseView(APIView):
    """``GET``: is the scaler paused? ``POST {"on": bool, "reason"}``: pause or resume every write (global admins)."""

    @extend_schema(responses=PauseSerializer)
    def get(self, request: Request) -> Response:
        row = ScalerSettings.objects.filter(pk=1).first() or ScalerSettings(pk=1)
        return Response(PauseSerializer(row).data)

    @extend_schema(request=SwitchSerializer, responses=PauseSerializer)
    def post(self, request: Request) -> Response:
        data = SwitchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        row = services.global_pause_set(on=values["on"], reason=values["reason"], by=request.user)
        return Response(PauseSerializer(row).data)


class SignalsView(APIView):
    """Pushed per-pod values of one metric: ``{"application"?, "metric", "values": [{"pod", "value", "timestamp"?}]}``.

    A workload sends its ServiceAccount token (and ``X-ICC-Cluster``; the application is implied), anyone else an
    API token with the operator role on the application. Any bad value refuses the whole batch (400 naming the
    field, counted in ``icc_scaler_signals_rejected_total``). Accepted values trigger an immediate evaluation."""

    authentication_classes = [MachineIdentityAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]  # type: ignore[list-item]
    permission_classes: list[Any] = []

    @extend_schema(request=SignalBatchSerializer, responses={202: AcceptedSerializer})
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise services.reject_signal("expected a JSON object", field="body", reason="bad_body")
        unknown = set(body) - {"application", "metric", "values"}
        if unknown:
            raise services.reject_signal("unknown field", field=sorted(unknown)[0], reason="bad_body")
        identity = machine_identity(request)
        given = body.get("application")
        if identity is not None:
            if given is not None and given != identity.application.pk:
                raise services.reject_signal(
                    f"this ServiceAccount belongs to application {identity.application.pk} "
                    f"({identity.application}), not {given!r}",
                    field="application",
                    reason="other_application",
                )
            application = identity.application
        else:
            if not request.user or not request.user.is_authenticated:
                raise NotAuthenticated("send a ServiceAccount token (with X-ICC-Cluster) or an ICC API token")
            if given is None:
                raise services.reject_signal("required with an ICC token", field="application", reason="bad_body")
            application = _application(request.user, given)
            if not can(request.user, Action.ACT, application):
                raise PermissionDenied("pushing signals needs the operator role on the application")
        accepted = services.record_signals(
            application=application, metric=body.get("metric"), values=body.get("values")
        )
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)


class AlertsView(APIView):
    """Alertmanager webhook receiver: each firing alert whose labels name an application (``cluster`` = its
    cluster's name, ``namespace``, ``app`` or ``application``) triggers an immediate evaluation of its policies.
    Needs an API token with the operator role on those applications (others are counted as unmatched)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=AlertsResultSerializer)
    def post(self, request: Request) -> Response:
        body = request.data
        alerts = body.get("alerts") if isinstance(body, dict) else None
        if not isinstance(alerts, list):
            raise DomainError("an Alertmanager webhook body with a list of alerts", field="alerts")
        visible = restrict(request.user, Action.READ, Application.objects.select_related("cluster"))
        matched, evaluations, unmatched = 0, 0, 0
        seen: set[int] = set()
        for alert in alerts[:500]:
            labels = (alert.get("labels") if isinstance(alert, dict) else None) or {}
            if not isinstance(labels, dict) or (isinstance(alert, dict) and alert.get("status") == "resolved"):
                continue
            name = labels.get("application") or labels.get("app")
            query = visible.filter(name=str(name or ""), namespace=str(labels.get("namespace") or ""))
            if labels.get("cluster"):
                query = query.filter(cluster__name=str(labels["cluster"]))
            found = [a for a in query[:2] if can(request.user, Action.ACT, a)]
            if len(found) != 1:
                unmatched += 1
                metrics.ALERTS_RECEIVED.labels(result="unmatched").inc()
                continue
            matched += 1
            metrics.ALERTS_RECEIVED.labels(result="matched").inc()
            if found[0].pk in seen:
                continue
            seen.add(found[0].pk)
            for policy in ScalingPolicy.objects.filter(application=found[0], enabled=True):
                evaluations += int(services.request_evaluation(policy, trigger="alert"))
        return Response({"matched": matched, "evaluations": evaluations, "unmatched": unmatched})
