"""Machine identity: a workload calls ICC's API with its Kubernetes ServiceAccount token.

``Authorization: Bearer <ServiceAccount JWT>`` plus ``X-ICC-Cluster: <cluster name>``. ICC asks that cluster's
API server (TokenReview) whether the token is valid, then maps the ServiceAccount to exactly one application:
the pod named in a bound token (``authentication.kubernetes.io/pod-name``), else the pods of that namespace
running as that ServiceAccount. The result is cached briefly under a hash of the token (never the token) and
never beyond the token's own expiry.

The caller gets no user rights at all: ``request.user`` is a :class:`MachineUser` (anonymous to
:func:`apps.core.access.restrict`), ``request.auth`` the :class:`MachineIdentity`. Endpoints that accept
machines list :class:`MachineIdentityAuthentication` first (before ICC's own bearer tokens, which it leaves
alone: they start with ``icc_``). Refusals are 401 (token not valid) or 403 (valid, but no single
application), audited like failed logins, without the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import Q
from rest_framework import authentication, exceptions

from apps.audit.models import ActorKind, Outcome
from apps.audit.services import Actor, audit_record_outcome
from apps.clusters import gateway as gateways
from apps.clusters.models import Application, Cluster, Pod
from apps.core import context
from apps.core.errors import UnavailableError
from apps.users.tokens import TOKEN_PREFIX

logger = logging.getLogger(__name__)

CLUSTER_HEADER = "X-ICC-Cluster"
SA_PREFIX = "system:serviceaccount:"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
CACHE_SECONDS = 60  # an identity is re-verified at least this often (a revoked token stops within it)
REFUSAL_CACHE_SECONDS = 10  # refusals too: a flood of bad tokens costs one TokenReview (and one audit) each 10 s
MAX_TOKEN_LENGTH = 16384


@dataclass(frozen=True)
class MachineIdentity:
    """Who is calling: a ServiceAccount of a registered cluster, mapped to one application."""

    cluster: Cluster
    namespace: str
    service_account: str
    application: Application
    pod: str = ""

    @property
    def username(self) -> str:
        return f"{SA_PREFIX}{self.namespace}:{self.service_account}"

    def actor(self) -> Actor:
        """How services record this caller in the audit trail."""
        return Actor(
            ActorKind.SERVICE_ACCOUNT,
            f"{self.cluster.pk}:{self.namespace}:{self.service_account}",
            f"{self.username} @ {self.cluster.name}",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster.pk,
            "cluster_name": self.cluster.name,
            "namespace": self.namespace,
            "service_account": self.service_account,
            "username": self.username,
            "pod": self.pod,
            "application": self.application.pk,
            "application_name": self.application.name,
        }


class MachineUser(AnonymousUser):
    """``request.user`` of a machine caller: anonymous to access control (no role, no rights)."""

    def __init__(self, identity: MachineIdentity) -> None:
        super().__init__()
        self.machine = identity

    def __str__(self) -> str:
        return f"{self.machine.username} @ {self.machine.cluster.name}"


class MachineRefused(exceptions.AuthenticationFailed):
    """401: the token is not a valid ServiceAccount token of the named cluster."""


class MachineForbidden(exceptions.APIException):
    """403: a valid token that maps to no single application (already audited, unlike a plain 403)."""

    status_code = 403
    default_code = "machine_forbidden"


def _cache_key(cluster_name: str, token: str) -> str:
    digest = hashlib.sha256(f"{cluster_name}\0{token}".encode()).hexdigest()
    return f"icc:machine-identity:{digest}"


def _token_expiry(token: str) -> float | None:
    """The JWT's ``exp`` claim, read without verifying (TokenReview verifies); only shortens the cache."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


def _refuse(
    key: str, *, status: int, message: str, cluster: Cluster | None, cluster_name: str, username: str = ""
) -> exceptions.APIException:
    """Record the refusal (audit, cache) and return the exception to raise."""
    namespace = username[len(SA_PREFIX) :].split(":", 1)[0] if username.startswith(SA_PREFIX) else ""
    audit_record_outcome(
        outcome=Outcome.FAILED if status == 401 else Outcome.DENIED,
        action="clusters.identity.authenticate",
        target_type="clusters.cluster",
        target_id=str(cluster.pk) if cluster else "",
        target_display=cluster.name if cluster else cluster_name[:255],
        actor=Actor(ActorKind.ANONYMOUS, "", username or "unverified ServiceAccount token"),
        message=message,
        scope={"cluster": str(cluster.pk), "namespace": namespace} if cluster else {},
        metadata={"cluster": cluster_name[:253], "username": username},
    )
    cache.set(key, {"refused": status, "message": message}, REFUSAL_CACHE_SECONDS)
    return _refusal(status, message)


def _refusal(status: int, message: str) -> exceptions.APIException:
    return MachineRefused(message) if status == 401 else MachineForbidden(message)


def _application_of(cluster: Cluster, namespace: str, service_account: str, pod_name: str) -> tuple[list[int], str]:
    """The applications the caller's pods belong to, and the name of the pod that decided it (bound tokens)."""
    if pod_name:
        pods = Pod.objects.filter(cluster=cluster, namespace=namespace, name=pod_name)
    else:
        runs_as = Q(service_account=service_account)
        if service_account == "default":
            runs_as |= Q(service_account="")  # no serviceAccountName: the namespace's default account
        pods = Pod.objects.filter(runs_as, cluster=cluster, namespace=namespace, deleting=False)
    ids = sorted(set(pods.exclude(application=None).values_list("application_id", flat=True)[:1000]))
    return ids, pod_name


def _verify(cluster_name: str, token: str, key: str) -> dict[str, Any]:
    """TokenReview and mapping; the cacheable description of the identity, or an exception (audited)."""
    cluster = Cluster.objects.filter(name=cluster_name).first()
    if cluster is None:
        raise _refuse(
            key,
            status=401,
            message=f"no registered cluster is named {cluster_name!r} ({CLUSTER_HEADER})",
            cluster=None,
            cluster_name=cluster_name,
        )
    try:
        review = gateways.for_cluster(cluster).token_review(token)
    except gateways.KubeError as exc:  # not the caller's fault: say so, do not cache
        logger.warning("TokenReview on cluster %s failed: %s", cluster.name, exc.message)
        raise UnavailableError(f"cannot verify the token with cluster {cluster.name} now: {exc.message}") from None
    if not review.get("authenticated"):
        why = str(review.get("error") or "the token is not valid")
        raise _refuse(
            key,
            status=401,
            cluster=cluster,
            cluster_name=cluster_name,
            message=f"cluster {cluster.name} refused the token (TokenReview): {why[:300]}",
        )
    user = review.get("user") or {}
    username = str(user.get("username") or "")
    parts = username.split(":")
    if not username.startswith(SA_PREFIX) or len(parts) != 4 or not all(parts[2:]):
        raise _refuse(
            key,
            status=403,
            cluster=cluster,
            cluster_name=cluster_name,
            username=username,
            message=f"{username or 'the token'} is not a ServiceAccount; only workloads' ServiceAccount "
            "tokens identify an application",
        )
    namespace, service_account = parts[2], parts[3]
    extra = user.get("extra") or {}
    pod_names = extra.get(POD_NAME_EXTRA) or []
    pod_name = str(pod_names[0]) if isinstance(pod_names, list) and pod_names else ""
    ids, pod_name = _application_of(cluster, namespace, service_account, pod_name)
    if len(ids) != 1:
        if pod_name:
            what = f"pod {namespace}/{pod_name} (bound to the token)"
        else:
            what = f"the pods of namespace {namespace} running as ServiceAccount {service_account}"
        if not ids:
            message = (
                f"{what} belong to no application ICC has observed in cluster {cluster.name} "
                "(is the workload running, and has ICC synced it?)"
            )
        else:
            names = list(Application.objects.filter(pk__in=ids).order_by("name").values_list("name", flat=True)[:5])
            message = (
                f"{what} belong to {len(ids)} applications ({', '.join(names)}); "
                "give each application its own ServiceAccount"
            )
        raise _refuse(key, status=403, message=message, cluster=cluster, cluster_name=cluster_name, username=username)
    return {
        "cluster": cluster.pk,
        "namespace": namespace,
        "service_account": service_account,
        "pod": pod_name,
        "application": ids[0],
    }


def _identity(found: dict[str, Any]) -> MachineIdentity | None:
    application = (
        Application.objects.select_related("cluster")
        .filter(pk=found["application"], cluster_id=found["cluster"])
        .first()
    )
    if application is None:
        return None
    return MachineIdentity(
        cluster=application.cluster,
        namespace=found["namespace"],
        service_account=found["service_account"],
        application=application,
        pod=found.get("pod") or "",
    )


def machine_authenticate(cluster_name: str, token: str) -> MachineIdentity:
    """The identity behind a ServiceAccount token from ``cluster_name``; raises a 401/403/503 API error."""
    key = _cache_key(cluster_name, token)
    cached = cache.get(key)
    if isinstance(cached, dict) and cached.get("refused"):
        raise _refusal(int(cached["refused"]), str(cached.get("message") or "refused"))
    if isinstance(cached, dict):
        identity = _identity(cached)
        if identity is not None:
            return identity
    found = _verify(cluster_name, token, key)
    identity = _identity(found)
    if identity is None:  # the application vanished between the two reads
        raise MachineForbidden("the workload's application no longer exists")
    ttl = float(CACHE_SECONDS)
    expiry = _token_expiry(token)
    if expiry is not None:
        ttl = min(ttl, expiry - time.time())
    if ttl >= 1:
        cache.set(key, found, int(ttl))
    return identity


class MachineIdentityAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <ServiceAccount token>`` with ``X-ICC-Cluster: <cluster name>``.

    Leaves ICC API tokens (``icc_...``) and other schemes to the next authentication class."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[MachineUser, MachineIdentity] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower() or parts[1].startswith(TOKEN_PREFIX):
            return None
        token = parts[1]
        cluster_name = str(request.META.get("HTTP_X_ICC_CLUSTER") or "").strip()
        if not cluster_name:
            if token.count(".") == 2:  # a JWT: surely a ServiceAccount token without its cluster
                raise MachineRefused(f"a ServiceAccount token needs the {CLUSTER_HEADER} header naming its cluster")
            return None
        if len(token) > MAX_TOKEN_LENGTH or len(cluster_name) > 63:
            raise MachineRefused("the token or the cluster name is too long")
        identity = machine_authenticate(cluster_name, token)
        context.bind(source="api", username=f"{identity.username}@{identity.cluster.name}")
        return MachineUser(identity), identity

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


def machine_identity(request: Any) -> MachineIdentity | None:
    """The caller's machine identity, if it authenticated as one."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, MachineIdentity) else None
