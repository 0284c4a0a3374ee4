"""The ``ValidatingWebhookConfiguration`` that points one cluster's API server at ICC's admission webhook.

Where ICC is reached: ``COMPLIANCE_WEBHOOK_URL`` (its public HTTPS base URL, e.g. through an ingress) or
``COMPLIANCE_WEBHOOK_SERVICE`` (``namespace/name:port`` of ICC's Service, when ICC runs in that cluster). The CA
that signed ICC's serving certificate comes from ``COMPLIANCE_WEBHOOK_CA_FILE`` (PEM; empty: the API server's
own trust store, as for a public certificate). kube-system and ICC's own namespace (``ICC_NAMESPACE``) are never
sent to the webhook, so neither the control plane nor ICC can lock itself out.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.urls import reverse

from apps.compliance.models import AdmissionWebhook
from apps.core.errors import DomainError

NAME = "icc-compliance"
WEBHOOK_NAME = "workloads.compliance.icc.dev"
PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
SERVICE = re.compile(r"^(?P<namespace>[a-z0-9-]{1,63})/(?P<name>[a-z0-9-]{1,63})(?::(?P<port>\d{1,5}))?$")
MASK = "<token: download the configuration to see it>"


def _ca_bundle(ca_pem: bytes | None) -> str:
    if ca_pem is None and settings.COMPLIANCE_WEBHOOK_CA_FILE:
        try:
            ca_pem = Path(settings.COMPLIANCE_WEBHOOK_CA_FILE).read_bytes()
        except OSError as exc:
            raise DomainError(
                f"COMPLIANCE_WEBHOOK_CA_FILE cannot be read ({exc.strerror})", field="COMPLIANCE_WEBHOOK_CA_FILE"
            ) from None
    if not ca_pem:
        return ""
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise DomainError("the webhook CA is not a PEM certificate", field="COMPLIANCE_WEBHOOK_CA_FILE")
    return base64.b64encode(ca_pem).decode()


def _client_config(path: str, base_url: str | None, service: str | None) -> dict[str, Any]:
    base_url = settings.COMPLIANCE_WEBHOOK_URL if base_url is None else base_url
    service = settings.COMPLIANCE_WEBHOOK_SERVICE if service is None else service
    if base_url:
        if not base_url.startswith("https://"):
            raise DomainError("the webhook URL must be https:// (API servers call webhooks over TLS)", field="url")
        return {"url": base_url.rstrip("/") + path}
    if service:
        found = SERVICE.match(service)
        if found is None:
            raise DomainError("COMPLIANCE_WEBHOOK_SERVICE is namespace/name[:port]", field="COMPLIANCE_WEBHOOK_SERVICE")
        return {
            "service": {
                "namespace": found["namespace"],
                "name": found["name"],
                "port": int(found["port"] or 443),
                "path": path,
            }
        }
    raise DomainError(
        "set COMPLIANCE_WEBHOOK_URL (ICC's HTTPS address as the cluster reaches it) or COMPLIANCE_WEBHOOK_SERVICE",
        field="COMPLIANCE_WEBHOOK_URL",
    )


def configuration(
    webhook: AdmissionWebhook,
    *,
    base_url: str | None = None,
    service: str | None = None,
    ca_pem: bytes | None = None,
    masked: bool = False,
) -> dict[str, Any]:
    """The manifest for ``webhook``'s cluster (``masked``: the secret path token replaced, for display)."""
    token = MASK if masked else webhook.token()
    path = reverse("compliance:admission", kwargs={"cluster_id": webhook.cluster_id, "token": "TOKEN"})
    client = _client_config(path.replace("TOKEN", token), base_url, service)
    bundle = _ca_bundle(ca_pem)
    if bundle:
        client["caBundle"] = bundle
    excluded = sorted({"kube-system", settings.ICC_NAMESPACE})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "icc"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": webhook.failure_policy,
                "matchPolicy": "Equivalent",
                "timeoutSeconds": webhook.timeout_seconds,
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments", "statefulsets", "daemonsets"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}
                    ]
                },
            }
        ],
    }


def as_yaml(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
