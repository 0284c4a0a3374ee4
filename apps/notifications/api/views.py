"""Notifications API: channels and rules (global ``configure``: others find none), the caller's subscriptions,
the event log with what was sent for each event, and the deliveries (``status=dead``: the dead letters). Every
write parses its input and calls the service."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.permissions import OWN
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.notifications import selectors
from apps.notifications.api.filters import DeliveryFilter, EventFilter
from apps.notifications.api.serializers import (
    ConfirmSerializer,
    NotificationChannelSerializer,
    NotificationChannelWriteSerializer,
    NotificationDeliverySerializer,
    NotificationEventDetailSerializer,
    NotificationEventSerializer,
    NotificationRuleSerializer,
    NotificationRuleWriteSerializer,
    NotificationSubscriptionSerializer,
    NotificationSubscriptionWriteSerializer,
    NotificationTestSerializer,
)
from apps.notifications.services import channels as channel_services
from apps.notifications.services import rules as rule_services


def _valid(serializer_class: Any, request: Request) -> dict[str, Any]:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class _Editable(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_rights = {"create": OWN}  # the service checks global configure


class ChannelViewSet(_Editable):
    """Notification channels (e-mail, Slack, Teams, webhook). ``secret`` is write-only; ``test/`` sends a test."""

    serializer_class = NotificationChannelSerializer

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.channels(user)

    @extend_schema(request=NotificationChannelWriteSerializer, responses={201: NotificationChannelSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        channel = channel_services.channel_create(
            by=request.user, **_valid(NotificationChannelWriteSerializer, request)
        )
        return Response(NotificationChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NotificationChannelWriteSerializer, responses=NotificationChannelSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        values = _valid(NotificationChannelWriteSerializer, request)
        channel = channel_services.channel_update(channel=self.get_object(), by=request.user, **values)
        return Response(NotificationChannelSerializer(channel).data)

    @extend_schema(
        request=ConfirmSerializer,
        parameters=[OpenApiParameter("confirm", str, description="the channel's name, typed to confirm")],
        responses={204: None},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ConfirmSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        confirm = body.validated_data["confirm"] or request.query_params.get("confirm", "")
        channel_services.channel_delete(channel=self.get_object(), confirm=confirm, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=NotificationTestSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message through this channel now; the answer is the channel's (status and reason)."""
        answer = channel_services.channel_test(channel=self.get_object(), by=request.user)
        return Response({"ok": answer.ok, "status_code": answer.status_code, "reason": answer.reason})


class RuleViewSet(_Editable):
    """Notification rules: event kinds (globs) x scope x minimum severity -> channels."""

    serializer_class = NotificationRuleSerializer

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.rules(user)

    @extend_schema(request=NotificationRuleWriteSerializer, responses={201: NotificationRuleSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = rule_services.rule_save(by=request.user, **_valid(NotificationRuleWriteSerializer, request))
        return Response(NotificationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NotificationRuleWriteSerializer, responses=NotificationRuleSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        values = _valid(NotificationRuleWriteSerializer, request)
        rule = rule_services.rule_save(rule=self.get_object(), by=request.user, **values)
        return Response(NotificationRuleSerializer(rule).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule_services.rule_delete(rule=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionViewSet(_Editable):
    """The caller's own subscriptions ("e-mail me about these"), at scopes the caller may read."""

    serializer_class = NotificationSubscriptionSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    action_rights = {"create": OWN, "destroy": OWN}

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.subscriptions(user)

    @extend_schema(request=NotificationSubscriptionWriteSerializer, responses={201: NotificationSubscriptionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        values = _valid(NotificationSubscriptionWriteSerializer, request)
        subscription = rule_services.subscription_create(by=request.user, **values)
        return Response(NotificationSubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule_services.subscription_delete(subscription=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Recorded events within the caller's scopes, each with its messages and their deliveries (filters: q, kind,
    severity, since, maintenance)."""

    serializer_class = NotificationEventSerializer
    filterset_class = EventFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.events(user, with_deliveries=self.action == "retrieve")

    def get_serializer_class(self) -> Any:
        return NotificationEventDetailSerializer if self.action == "retrieve" else NotificationEventSerializer


class DeliveryViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Deliveries within the caller's scopes (filters: status, channel, message); ``status=dead``: dead letters."""

    serializer_class = NotificationDeliverySerializer
    filterset_class = DeliveryFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.deliveries(user)
