"""Admission webhook API: each cluster's webhook settings (read with the cluster), and with configure rights on the
cluster: create or change them, download the full ValidatingWebhookConfiguration (it carries the secret path
token; recorded), apply it to the cluster, rotate the token, remove it (typed cluster name). The token never
appears in any other answer."""

from __future__ import annotations

from typing import Any

import yaml
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters.models import Cluster
from apps.compliance import webhook_config
from apps.compliance.models import AdmissionWebhook, FailurePolicy
from apps.compliance.services import webhooks as services
from apps.core.access import Action, restrict
from apps.core.api.permissions import OWN
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError


class WebhookSerializer(serializers.ModelSerializer[AdmissionWebhook]):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    applied_by = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField()

    class Meta:
        model = AdmissionWebhook
        fields = (
            "id",
            "cluster",
            "cluster_name",
            "failure_policy",
            "timeout_seconds",
            "applied_at",
            "applied_by",
            "address",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_applied_by(self, webhook: AdmissionWebhook) -> str | None:
        return webhook.applied_by.username if webhook.applied_by is not None else None

    def get_address(self, webhook: AdmissionWebhook) -> str:
        """Where the cluster will call (token masked), or why no configuration can be made yet."""
        try:
            client = webhook_config.configuration(webhook, masked=True)["webhooks"][0]["clientConfig"]
        except DomainError as exc:
            return f"not configured: {exc.message}"
        if "url" in client:
            return str(client["url"])
        service = client["service"]
        return f"service {service['namespace']}/{service['name']}:{service['port']}{service['path']}"


class WebhookWriteSerializer(serializers.Serializer[Any]):
    cluster = serializers.IntegerField(required=False)
    failure_policy = serializers.ChoiceField(choices=FailurePolicy.choices, required=False)
    timeout_seconds = serializers.IntegerField(required=False)


class WebhookRemoveSerializer(serializers.Serializer[Any]):
    confirm = serializers.CharField(required=False, allow_blank=True, default="")


class WebhookAppliedSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    resource_version = serializers.CharField(allow_null=True)


class WebhookViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Admission webhook settings per cluster. ``configuration`` answers the manifest (``?output=yaml`` or json)."""

    serializer_class = WebhookSerializer
    action_rights = {
        "create": OWN,  # checked by the service on the cluster named in the body
        "configuration": Action.CONFIGURE,
        "apply": Action.CONFIGURE,
        "rotate_token": Action.CONFIGURE,
    }

    def get_restricted_queryset(self, user: Any) -> Any:
        return (
            restrict(user, Action.READ, AdmissionWebhook.objects.all())
            .select_related("cluster", "applied_by")
            .order_by("cluster__name")
        )

    def _write(self, request: Request) -> dict[str, Any]:
        body = WebhookWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return dict(body.validated_data)

    @extend_schema(request=WebhookWriteSerializer, responses={201: WebhookSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        values = self._write(request)
        cluster = restrict(request.user, Action.READ, Cluster.objects.all()).filter(pk=values.pop("cluster", None))
        found = cluster.first()
        if found is None:
            raise DomainError("no such cluster (or you cannot see it)", field="cluster")
        webhook = services.webhook_configure(cluster=found, by=request.user, **values)
        return Response(WebhookSerializer(self.get_queryset().get(pk=webhook.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookWriteSerializer, responses=WebhookSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        webhook = self.get_object()
        values = self._write(request)
        values.pop("cluster", None)
        services.webhook_configure(cluster=webhook.cluster, by=request.user, **values)
        return Response(WebhookSerializer(self.get_queryset().get(pk=webhook.pk)).data)

    @extend_schema(request=WebhookRemoveSerializer, responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = WebhookRemoveSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        confirm = body.validated_data["confirm"] or request.query_params.get("confirm", "")
        services.webhook_remove(webhook=self.get_object(), confirm=confirm, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[OpenApiParameter("output", str, enum=["json", "yaml"], description="default json")],
        responses={(200, "application/json"): dict, (200, "application/yaml"): str},
    )
    @action(detail=True, methods=["get"])
    def configuration(self, request: Request, pk: str | None = None) -> Any:
        """The full ValidatingWebhookConfiguration, with the token (a credential: handle it as one)."""
        output = request.query_params.get("output", "json")
        if output not in ("json", "yaml"):
            raise DomainError("output is json or yaml", field="output")
        manifest = services.webhook_download(webhook=self.get_object(), by=request.user)
        if output == "json":
            return Response(manifest)
        from django.http import HttpResponse

        response = HttpResponse(yaml.safe_dump(manifest, sort_keys=False), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="{webhook_config.NAME}.yaml"'
        return response

    @extend_schema(request=None, responses=WebhookAppliedSerializer)
    @action(detail=True, methods=["post"])
    def apply(self, request: Request, pk: str | None = None) -> Response:
        """Create or replace the configuration in the cluster (ICC's credentials must allow it)."""
        return Response(services.webhook_apply(webhook=self.get_object(), by=request.user))

    @extend_schema(request=None, responses=WebhookSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request: Request, pk: str | None = None) -> Response:
        """A new path token: apply or download the configuration again (the old URL stops working now)."""
        webhook = services.webhook_rotate_token(webhook=self.get_object(), by=request.user)
        return Response(WebhookSerializer(self.get_queryset().get(pk=webhook.pk)).data)
