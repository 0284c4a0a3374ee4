"""The Kubernetes gateway: the one place ICC talks to API servers.

It builds a connection pool from stored credentials with the official client's configuration (TLS, CA data,
client certificates, SNI), puts an explicit timeout on every call, retries only transient failures
(connection errors, 429, 5xx — and for non-idempotent writes only failures before the request was sent)
with jittered exponential backoff, and turns API errors into domain errors that name what went wrong.
Bodies are read as JSON with orjson (no model objects), which keeps full syncs and watches cheap.
"""

from __future__ import annotations

import atexit
import logging
import random
import re
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import urllib3
from django.conf import settings
from kubernetes.client import Configuration
from kubernetes.client.rest import RESTClientObject
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from apps.clusters.credentials import Credentials, resolve
from apps.core import outbound
from apps.core.errors import DomainError

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
PROPAGATION_POLICIES = frozenset({"Background", "Foreground", "Orphan"})


# --- domain errors ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldCause:
    """One field the API server rejected (a Status' ``details.causes[]``): ``field`` a path such as
    ``spec.template.spec.restartPolicy``, ``reason`` a CauseType such as ``FieldValueNotSupported``."""

    field: str
    reason: str
    message: str


class KubeError(DomainError):
    """The cluster refused or failed a call. ``status`` is what ICC answers (502 unless more precise);
    ``reason`` is Kubernetes' StatusReason (``AlreadyExists``, ``Invalid`` ...) when it gave one from the fixed
    list, ``causes`` the fields it rejected (Invalid)."""

    status = 502
    code = "kube_error"

    def __init__(
        self,
        message: str,
        *,
        kube_status: int = 0,
        field: str | None = None,
        code: str | None = None,
        reason: str = "",
        causes: tuple[FieldCause, ...] = (),
    ):
        super().__init__(message, field=field, code=code)
        self.kube_status = kube_status
        self.reason = reason
        self.causes = causes


class Unreachable(KubeError):
    status = 503
    code = "unreachable"


class TLSFailure(KubeError):
    code = "tls_failed"


class Unauthorized(KubeError):
    code = "unauthorized"


class Forbidden(KubeError):
    code = "kube_forbidden"


class NotFound(KubeError):
    status = 404
    code = "not_found"


class Conflict(KubeError):
    status = 409
    code = "conflict"


class Gone(KubeError):
    status = 410
    code = "gone"


class Invalid(KubeError):
    status = 400
    code = "kube_invalid"


class OutboundBlocked(KubeError):
    """The address resolved (now) to one ICC never connects to (see :mod:`apps.core.outbound`)."""

    code = "outbound_refused"


# Kubernetes' StatusReason values: the only words of an error body ICC repeats (a fixed list, so an answer can
# never carry text of its own into a message).
STATUS_REASONS = frozenset(
    {
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    }
)


# The error class of a status, and what the message adds to the status line (401 says it instead of it).
STATUS_ERRORS: dict[int, tuple[type[KubeError], str]] = {
    401: (Unauthorized, ""),
    403: (Forbidden, " — the credentials ICC holds may not do this (RBAC)"),
    404: (NotFound, ""),
    409: (Conflict, ""),
    410: (Gone, ""),
    400: (Invalid, ""),
    422: (Invalid, ""),
}


# A more precise code than the status' for some reasons (a create of an existing name is not an edit conflict).
REASON_CODES = {"AlreadyExists": "already_exists"}

# Kubernetes' CauseType values, and what a field path may look like, for the field causes an Invalid repeats.
CAUSE_TYPES = frozenset(
    {
        "FieldValueNotFound",
        "FieldValueRequired",
        "FieldValueDuplicate",
        "FieldValueInvalid",
        "FieldValueNotSupported",
        "FieldValueForbidden",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "InternalError",
        "FieldValueTypeInvalid",
    }
)
FIELD_PATH = re.compile(r"[A-Za-z0-9_.\[\]/\-]{1,200}")
CAUSES_SHOWN = 5
CAUSE_MESSAGE_CHARS = 200


def _error_for(status: int, body: bytes, what: str) -> KubeError:
    """The error of a non-2xx answer. Rule: the message names the status (and Kubernetes' reason, from a fixed
    list), never other text of the body: the address may not be a Kubernetes API server at all, and whatever it
    answers must not be readable through ICC's error messages. The one exception is an Invalid Status (422):
    the fields it names and the API server's word on each (bounded), which is what a person must fix."""
    if status == 401:
        return Unauthorized(f"{what}: 401 Unauthorized — the API server rejected the credentials", kube_status=401)
    data = _status_of(body)
    reason = _reason_of(data)
    detail = f"{what}: HTTP {status} {_status_words(status, reason)}"
    error, suffix = STATUS_ERRORS.get(status, (Unreachable if status in TRANSIENT_STATUSES else KubeError, ""))
    causes = _field_causes(data) if status == 422 and reason == "Invalid" else ()
    if causes:
        suffix += ": " + "; ".join(f"{c.field}: {c.message}" if c.message else c.field for c in causes)
    return error(detail + suffix, kube_status=status, code=REASON_CODES.get(reason), reason=reason, causes=causes)


def _status_of(body: bytes) -> dict[str, Any]:
    """The answer as a JSON object ({} when it is none)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}  # not JSON: the status alone says what happened
    return data if isinstance(data, dict) else {}


def _reason_of(data: dict[str, Any]) -> str:
    """Kubernetes' reason, only when it is one of the fixed list."""
    reason = data.get("reason")
    return reason if isinstance(reason, str) and reason in STATUS_REASONS else ""


def _field_causes(data: dict[str, Any]) -> tuple[FieldCause, ...]:
    """The rejected fields of an Invalid Status: only a field path of the expected form, a CauseType from the
    fixed list and a short printable message; anything else of the body is left out."""
    if data.get("kind") != "Status":
        return ()
    causes = (data.get("details") or {}).get("causes") if isinstance(data.get("details"), dict) else None
    found: list[FieldCause] = []
    for cause in causes if isinstance(causes, list) else []:
        if not isinstance(cause, dict):
            continue
        path, kind, message = cause.get("field"), cause.get("reason"), cause.get("message")
        if not isinstance(path, str) or not FIELD_PATH.fullmatch(path):
            continue
        text = "".join(ch for ch in message if ch.isprintable()) if isinstance(message, str) else ""
        if len(text) > CAUSE_MESSAGE_CHARS:
            text = text[: CAUSE_MESSAGE_CHARS - 1] + "…"
        found.append(FieldCause(path, kind if kind in CAUSE_TYPES else "", text))
        if len(found) == CAUSES_SHOWN:
            break
    return tuple(found)


def _status_words(status: int, reason: str) -> str:
    """The status' phrase, and Kubernetes' reason when it says something else (only a reason from the fixed list)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    said = f" ({reason})" if reason and reason != phrase.replace(" ", "") else ""
    return phrase + said


def _network_error(exc: Exception, server: str) -> KubeError:
    """What failed, in ICC's words: TLS (with OpenSSL's reason), a timeout, refused, unknown host, or the kind of
    failure. Rule: never the exception's text otherwise — a malformed answer's first line (another service's
    banner, say) would be repeated in it."""
    if isinstance(exc, SSLError) or isinstance(getattr(exc, "reason", None), ssl.SSLError):
        reason = str(exc)
        for marker in ("certificate verify failed: ", "SSLError(", "SSL: "):
            if marker in reason:
                reason = reason.split(marker, 1)[1].split("')", 1)[0].split('")', 1)[0].rstrip(")'\" ")
                break
        else:
            reason = exc.__class__.__name__
        return TLSFailure(f"TLS verification of {server} failed: {reason[:200]}")
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)) and not isinstance(exc, NewConnectionError):
        return Unreachable(f"{server} did not answer in time ({exc.__class__.__name__})")
    text = str(getattr(exc, "reason", None) or exc)
    if "Connection refused" in text or "Errno 111" in text:
        text = "connection refused"
    elif isinstance(exc, NameResolutionError) or any(
        marker in text for marker in ("Name or service not known", "nodename nor servname", "Errno -2")
    ):
        text = "unknown host name"
    elif "Connection reset" in text or "Errno 104" in text:
        text = "connection reset"
    elif "Remote end closed connection" in text or "RemoteDisconnected" in text:
        text = "the server closed the connection without answering"
    elif "BadStatusLine" in text or "LineTooLong" in text or "IncompleteRead" in text:
        text = "the answer is not HTTP"
    else:
        text = f"connection failed ({exc.__class__.__name__})"
    return Unreachable(f"{server} is unreachable: {text}")


# --- the client -------------------------------------------------------------------------------------------

_files_dir: Path | None = None
_files_lock = threading.Lock()


def _private_file(content: str) -> str:
    """Client certificates must be files for the TLS layer: keep them in one 0700 directory per process."""
    global _files_dir  # noqa: PLW0603 - created lazily, removed at exit
    with _files_lock:
        if _files_dir is None:
            _files_dir = Path(tempfile.mkdtemp(prefix="icc-kube-"))
            atexit.register(shutil.rmtree, _files_dir, True)
        handle = tempfile.NamedTemporaryFile("w", dir=_files_dir, delete=False)  # noqa: SIM115
        with handle:
            handle.write(content)
        return handle.name


@dataclass
class ScaleResult:
    replicas: int
    previous: int
    resource_version: str


class Gateway:
    """A client for one API server. Thread-safe (urllib3 pools are)."""

    def __init__(self, credentials: Credentials, *, timeout: float | None = None, label: str = "") -> None:
        self.stored = credentials
        self.credentials = resolve(credentials)
        self.server = self.credentials.server
        self.label = label or self.server
        self.timeout = float(timeout or settings.KUBE_REQUEST_TIMEOUT)
        self._token_read_at = time.monotonic()
        configuration = Configuration(host=self.server)
        configuration.connection_pool_maxsize = 32
        configuration.retries = False
        if self.credentials.insecure_skip_tls_verify:
            configuration.verify_ssl = False
        if self.credentials.ca_data:
            configuration.ca_cert_data = self.credentials.ca_data
        if self.credentials.client_cert_data:
            configuration.cert_file = _private_file(self.credentials.client_cert_data)
            configuration.key_file = _private_file(self.credentials.client_key_data)
        if self.credentials.tls_server_name:
            configuration.tls_server_name = self.credentials.tls_server_name
        self.pool: urllib3.PoolManager = outbound.guard_pool_manager(RESTClientObject(configuration).pool_manager)
        if self.credentials.insecure_skip_tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # -- plumbing

    def _headers(self, content_type: str | None) -> dict[str, str]:
        if self.stored.in_cluster and time.monotonic() - self._token_read_at > 60:
            self.credentials = resolve(self.stored)  # projected tokens rotate
            self._token_read_at = time.monotonic()
        headers = {"Accept": "application/json", "User-Agent": "icc/1"}
        if self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        query = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
        return f"{self.server}{path}" + (f"?{urlencode(query)}" if query else "")

    def raw(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
        retries: int = 3,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One call with retries on transient failures; raises a KubeError for any non-2xx answer."""
        url = self.url(path, query)
        data = orjson.dumps(body) if body is not None else None
        limit = timeout if timeout is not None else self.timeout
        if isinstance(limit, tuple):
            http_timeout = urllib3.Timeout(connect=limit[0], read=limit[1])
        else:
            http_timeout = urllib3.Timeout(connect=min(5.0, limit), read=limit)
        attempt = 0
        what = f"{method} {path}"
        while True:
            attempt += 1
            try:
                response = self.pool.request(
                    method,
                    url,
                    body=data,
                    headers=self._headers(content_type if data is not None else None),
                    timeout=http_timeout,
                    retries=False,
                    preload_content=not stream,
                )
            except outbound.OutboundRefused as exc:  # checked at connect time: DNS may have changed since
                raise OutboundBlocked(exc.message) from None
            except (NewConnectionError, ConnectTimeoutError) as exc:  # nothing was sent: safe to retry
                error = _network_error(exc, self.server)
                if attempt > retries:
                    raise error from None
            except SSLError as exc:
                raise _network_error(exc, self.server) from None
            except (ReadTimeoutError, ProtocolError, HTTPError) as exc:
                error = _network_error(exc, self.server)
                if method not in IDEMPOTENT or attempt > retries:
                    raise error from None
            else:
                if response.status < 300:
                    return response
                payload = response.data if not stream else response.read()
                error = _error_for(response.status, payload, what)
                if response.status not in TRANSIENT_STATUSES or method not in IDEMPOTENT or attempt > retries:
                    raise error
            delay = min(4.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter
            logger.info("kube %s %s: %s; retry %d in %.2fs", self.label, what, error.message, attempt, delay)
            time.sleep(delay)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return orjson.loads(self.raw(method, path, **kwargs).data)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.json("GET", path, **kwargs)

    # -- reading

    def version(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/version")
        return data

    def list_pages(
        self, path: str, *, limit: int = 500, query: dict[str, Any] | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Every object at ``path`` in pages (limit/continue); yields (items, list resourceVersion)."""
        token = ""
        while True:
            page = self.get(path, query={**(query or {}), "limit": limit, "continue": token})
            metadata = page.get("metadata") or {}
            yield page.get("items") or [], str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or ""
            if not token:
                return

    def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int = 300, query: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) from ``resource_version``, with bookmarks.

        Raises Gone when the version is too old (the caller relists). Ends when the server closes the
        stream (after ``timeout_seconds``) or the connection breaks (a KubeError)."""
        params = {
            **(query or {}),
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        response = self.raw(
            "GET", path, query=params, stream=True, retries=0, timeout=(min(5.0, self.timeout), timeout_seconds + 15)
        )
        buffer = b""
        try:
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        code = int(status.get("code") or 500)
                        raise _error_for(code, orjson.dumps(status), f"watch {path}")
                    yield event
        except (ProtocolError, ReadTimeoutError, HTTPError) as exc:
            raise _network_error(exc, self.server) from None
        finally:
            response.release_conn()

    # -- access checks

    def access_review(self, verb: str, resource: str, *, group: str = "", subresource: str = "") -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "subresource": subresource}
            },
        }
        result = self.json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review)
        return bool((result.get("status") or {}).get("allowed"))

    def token_review(self, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
        review: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        if audiences:
            review["spec"]["audiences"] = audiences
        result = self.json("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
        status: dict[str, Any] = result.get("status") or {}
        return status

    # -- acting

    def get_scale(self, path: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"{path}/scale")
        return data

    def put_scale(self, path: str, current: dict[str, Any], replicas: int, resource_version: str) -> dict[str, Any]:
        """Set replicas through the scale subresource; a changed resourceVersion answers Conflict."""
        body = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {**(current.get("metadata") or {}), "resourceVersion": resource_version},
            "spec": {"replicas": replicas},
        }
        data: dict[str, Any] = self.json("PUT", f"{path}/scale", body=body, retries=2)
        return data

    def patch(self, path: str, body: dict[str, Any] | list[Any], *, patch_type: str = "merge") -> dict[str, Any]:
        """A merge, strategic merge or (``json``: RFC 6902 operations) JSON Patch of the object at ``path``."""
        content_type = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json"}
        content_type["json"] = "application/json-patch+json"
        data: dict[str, Any] = self.json("PATCH", path, body=body, content_type=content_type[patch_type], retries=1)
        return data

    def create(self, path: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``body`` in the collection at ``path`` (e.g. ``/apis/batch/v1/namespaces/ns/jobs``); returns the
        stored object. ``dry_run``: validated and admitted by the API server, nothing stored. A name in use
        raises Conflict with code ``already_exists`` (reason AlreadyExists), a rejected object Invalid naming the
        fields (``causes``). Retried only when the request was not sent (a create is not idempotent)."""
        query = {"dryRun": "All"} if dry_run else None
        data: dict[str, Any] = self.json("POST", path, body=body, query=query, retries=2)
        return data

    def delete(self, path: str, *, propagation: str = "Background") -> None:
        """Delete the object at ``path``; its dependents (a Job's pods) are deleted after it (``Background``),
        before it (``Foreground``: the object stays, with a deletionTimestamp, until they are gone) or kept
        (``Orphan``). NotFound when there is no such object (also when a retried call finds it already gone)."""
        if propagation not in PROPAGATION_POLICIES:
            raise ValueError(f"propagation must be one of {', '.join(sorted(PROPAGATION_POLICIES))}")
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        self.raw("DELETE", path, body=options, retries=2)

    def pod_log(
        self, namespace: str, pod: str, *, container: str = "", tail_lines: int = 100, follow: bool = False
    ) -> urllib3.BaseHTTPResponse:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
        query = {"container": container, "tailLines": tail_lines, "follow": "true" if follow else ""}
        timeout: float | tuple[float, float] = (min(5.0, self.timeout), 3600.0) if follow else self.timeout
        return self.raw("GET", path, query=query, stream=True, timeout=timeout, retries=0 if follow else 2)


# --- one gateway per cluster and credentials version, shared by the threads of a process -------------------

_gateways: dict[tuple[int, bytes], Gateway] = {}
_gateways_lock = threading.Lock()


def for_cluster(cluster: Any) -> Gateway:
    """The gateway of a registered cluster (rebuilt when its credentials change)."""
    from apps.clusters.crypto import decrypt

    blob = bytes(cluster.credentials)
    key = (cluster.pk, blob[-32:])
    with _gateways_lock:
        gateway = _gateways.get(key)
    if gateway is None:
        gateway = Gateway(Credentials.from_dict(decrypt(blob)), label=cluster.name)
        with _gateways_lock:
            for old in [k for k in _gateways if k[0] == cluster.pk]:
                del _gateways[old]
            _gateways[key] = gateway
    return gateway


def forget(cluster_id: int) -> None:
    with _gateways_lock:
        for old in [k for k in _gateways if k[0] == cluster_id]:
            del _gateways[old]
