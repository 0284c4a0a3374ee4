"""The connection of a cluster: the permissions ICC needs (asked with SelfSubjectAccessReview), the probe that
tests a connection before it is stored, and the credentials built from what a person gave."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from apps.clusters import credentials as creds
from apps.clusters import gateway as gateways
from apps.clusters.crypto import decrypt
from apps.clusters.models import AuthMode, Cluster
from apps.core import outbound
from apps.core.access import Action
from apps.core.errors import DomainError, ForbiddenError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permission:
    verbs: tuple[str, ...]
    resource: str
    group: str = ""
    subresource: str = ""

    def label(self) -> str:
        name = f"{self.group}/{self.resource}" if self.group else self.resource
        return f"{', '.join(self.verbs)} {name}" + (f"/{self.subresource}" if self.subresource else "")


# Rule: ICC must be able to list and watch everything it observes; acting (scale, restart, logs, machine
# identity, pod delete) is optional — a read-only registration works and shows what it cannot do.
REQUIRED = (
    Permission(("list", "watch"), "namespaces"),
    Permission(("list", "watch"), "nodes"),
    Permission(("list", "watch"), "pods"),
    Permission(("list", "watch"), "events"),
    Permission(("list", "watch"), "deployments", "apps"),
    Permission(("list", "watch"), "statefulsets", "apps"),
    Permission(("list", "watch"), "daemonsets", "apps"),
    Permission(("list", "watch"), "jobs", "batch"),
)
OPTIONAL = (
    Permission(("get", "update"), "deployments", "apps", "scale"),
    Permission(("get", "update"), "statefulsets", "apps", "scale"),
    Permission(("patch",), "deployments", "apps"),
    Permission(("patch",), "statefulsets", "apps"),
    Permission(("patch",), "daemonsets", "apps"),
    Permission(("get",), "pods", "", "log"),
    Permission(("delete",), "pods"),
    Permission(("create",), "tokenreviews", "authentication.k8s.io"),
)


def _missing(gateway: gateways.Gateway, permissions: tuple[Permission, ...]) -> list[str]:
    checks = [(p, verb) for p in permissions for verb in p.verbs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(
            pool.map(
                lambda c: gateway.access_review(c[1], c[0].resource, group=c[0].group, subresource=c[0].subresource),
                checks,
            )
        )
    lacking: dict[Permission, list[str]] = {}
    for (permission, verb), ok in zip(checks, allowed, strict=True):
        if not ok:
            lacking.setdefault(permission, []).append(verb)
    return [Permission(tuple(verbs), p.resource, p.group, p.subresource).label() for p, verbs in lacking.items()]


def missing_permissions(gateway: gateways.Gateway) -> list[str]:
    """Every permission ICC uses (required and optional) that the gateway's credentials lack, as labels."""
    return _missing(gateway, REQUIRED + OPTIONAL)


@dataclass
class Probe:
    server_version: str
    missing_optional: list[str]


def probe(credentials: creds.Credentials, *, field: str) -> Probe:
    """Connect and check permissions; raise a DomainError (400) naming ``field`` and what is wrong."""
    gateway = gateways.Gateway(credentials, timeout=8)
    try:
        version = gateway.version()
        missing = _missing(gateway, REQUIRED)
        if missing:
            raise gateways.Forbidden(
                "403 Forbidden — ICC lacks these permissions: "
                + "; ".join(missing)
                + " (grant them with a ClusterRole; see README)",
                kube_status=403,
            )
        optional = _missing(gateway, OPTIONAL)
    except gateways.KubeError as exc:
        target = field
        if field == "token" and isinstance(exc, (gateways.Unreachable, gateways.OutboundBlocked)):
            target = "api_url"
        elif field == "token" and isinstance(exc, gateways.TLSFailure):
            target = "ca_data"
        raise DomainError(exc.message, field=target, code=exc.code) from None
    return Probe(server_version=str(version.get("gitVersion") or ""), missing_optional=optional)


def build_credentials(
    *,
    auth_mode: str,
    api_url: str = "",
    token: str = "",
    ca_data: str = "",
    kubeconfig: str = "",
    context: str = "",
    allow_insecure: bool = False,
) -> tuple[creds.Credentials, str, str]:
    """(credentials, the field to blame for connection problems, the kubeconfig context used).

    Rule: the API server's address must pass the outbound policy (:mod:`apps.core.outbound`), checked here on
    the field it came from and again by the gateway whenever it connects."""
    if auth_mode == AuthMode.KUBECONFIG:
        if not kubeconfig.strip():
            raise DomainError("upload a kubeconfig", field="kubeconfig")
        credentials, chosen = creds.from_kubeconfig(kubeconfig, context=context, allow_insecure=allow_insecure)
        outbound.check_outbound_url(credentials.server, field="kubeconfig")
        return credentials, "kubeconfig", chosen
    if auth_mode == AuthMode.TOKEN:
        credentials = creds.from_token(server=api_url, token=token, ca_data=ca_data, allow_insecure=allow_insecure)
        outbound.check_outbound_url(credentials.server, field="api_url")
        return credentials, "token", ""
    if auth_mode == AuthMode.IN_CLUSTER:
        return creds.in_cluster(), "auth_mode", ""
    raise DomainError(f"unknown auth mode {auth_mode!r}; one of {', '.join(AuthMode.values)}", field="auth_mode")


def check_in_cluster(auth_mode: str, cluster: Cluster | None) -> None:
    """Rule: registering a cluster in in-cluster mode, or switching one to it, is for global admins: it lends
    ICC's own ServiceAccount (its rights in ICC's cluster) to whoever administers that cluster entry. A call
    outside any request (the shell, a task) is trusted."""
    if auth_mode != AuthMode.IN_CLUSTER or (cluster is not None and cluster.auth_mode == AuthMode.IN_CLUSTER):
        return
    from apps.core import context
    from apps.core.access import GLOBAL, can_at

    user = context.current().user
    if user is not None and not can_at(user, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError(
            "in-cluster mode uses ICC's own ServiceAccount: only a global admin may choose it", field="auth_mode"
        )


def edit_connection(cluster: Cluster, values: dict[str, Any]) -> dict[str, Any]:
    """The connection of an edited cluster, from the connection fields given (``build_credentials`` keywords).

    Rules: the address is kept unless a new one is given. The stored token is reused only when the address,
    the mode and the way the server is verified stay as they are (rotate a token without resending the CA
    bundle): a stored token is never sent to an address it was not registered for, nor to one verified
    differently, so a new ``api_url``, ``auth_mode``, CA bundle or ``allow_insecure`` needs the token again
    (400 naming ``token``); a kubeconfig cluster needs its kubeconfig again for any change, a context included
    (400 naming ``kubeconfig``)."""
    auth_mode = values.get("auth_mode") or cluster.auth_mode
    connection: dict[str, Any] = {
        "auth_mode": auth_mode,
        "allow_insecure": values.get("allow_insecure", cluster.allow_insecure),
        **{name: values[name] for name in ("api_url", "token", "ca_data", "kubeconfig", "context") if name in values},
    }
    if auth_mode != AuthMode.TOKEN:
        return connection
    connection.setdefault("api_url", cluster.api_url)
    if cluster.auth_mode != AuthMode.TOKEN:
        if not str(connection.get("token") or "").strip():
            raise DomainError(
                f"a change from {cluster.auth_mode} to token needs the token: stored credentials are never reused "
                "for another mode",
                field="token",
            )
        return connection
    stored = creds.Credentials.from_dict(decrypt(bytes(cluster.credentials)))
    connection.setdefault("ca_data", stored.ca_data)  # a CA bundle is public: kept unless replaced
    if str(connection.get("token") or "").strip():
        return connection  # a token given now: the stored one is not used
    changed = ""
    if not _same_address(str(connection["api_url"]), cluster.api_url):
        changed = "a new API URL"
    elif "ca_data" in values and str(values["ca_data"] or "").strip() != stored.ca_data.strip():
        changed = "a new CA bundle"
    elif bool(connection["allow_insecure"]) and not cluster.allow_insecure:
        changed = "allowing an insecure connection"
    if changed:
        raise DomainError(
            f"{changed} needs the token again: stored credentials are never sent to an address they were not "
            "registered for, nor verified differently",
            field="token",
        )
    connection["token"] = stored.token
    return connection


def _same_address(given: str, stored: str) -> bool:
    return given.strip().rstrip("/") == stored.strip().rstrip("/")
