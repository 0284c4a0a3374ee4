"""Cluster credentials: what ICC stores (encrypted) to reach an API server, and how it gets them.

Three ways in: an uploaded kubeconfig (one chosen context, flattened: certificates embedded as ``*-data``),
a bearer token plus CA bundle, or in-cluster mode (ICC's own ServiceAccount, read from the pod's filesystem
on every use so rotated tokens are picked up). Every refusal names the input at fault.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apps.core.errors import DomainError
from apps.core.yamlsafe import load_bounded

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str = ""
    ca_data: str = ""  # PEM
    client_cert_data: str = ""  # PEM
    client_key_data: str = ""  # PEM
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    in_cluster: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Credentials:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def __repr__(self) -> str:  # never print secrets, even in a traceback's locals
        return f"Credentials(server={self.server!r}, in_cluster={self.in_cluster})"

    __str__ = __repr__


def check_server(server: str, *, allow_insecure: bool, field: str = "api_url") -> str:
    """Rule: the API server is an absolute https URL; plain http only with explicit consent."""
    server = (server or "").strip().rstrip("/")
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError(f"{server or '(empty)'!r} is not an http(s) URL of an API server", field=field)
    if parts.scheme == "http" and not allow_insecure:
        raise DomainError(
            f"{server} is not HTTPS: credentials would cross the network in clear; "
            "set allow_insecure to accept that explicitly",
            field=field,
            code="insecure_server",
        )
    return server


def _pem(value: str, what: str, field: str) -> str:
    value = (value or "").strip()
    if value and "-----BEGIN" not in value:
        raise DomainError(f"{what} is not PEM (expected -----BEGIN ...)", field=field)
    return value + "\n" if value else ""


def _b64_pem(data: str, what: str) -> str:
    try:
        decoded = base64.b64decode(data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise DomainError(f"{what} is not valid base64", field="kubeconfig") from None
    return _pem(decoded, what, "kubeconfig")


def from_token(*, server: str, token: str, ca_data: str, allow_insecure: bool) -> Credentials:
    server = check_server(server, allow_insecure=allow_insecure)
    token = (token or "").strip()
    if not token:
        raise DomainError("a bearer token is required", field="token")
    if any(ch.isspace() for ch in token):
        raise DomainError("a bearer token contains no whitespace", field="token")
    ca = _pem(ca_data, "the CA bundle", "ca_data")
    if server.startswith("https://") and not ca and not allow_insecure:
        raise DomainError(
            "a CA bundle is required to verify the API server (or set allow_insecure to skip verification)",
            field="ca_data",
        )
    return Credentials(server=server, token=token, ca_data=ca, insecure_skip_tls_verify=not ca and allow_insecure)


MAX_KUBECONFIG_BYTES = 256 * 1024
MAX_KUBECONFIG_DEPTH = 32


def kubeconfig_contexts(text: str) -> tuple[list[str], str]:
    """The context names of a kubeconfig and its current context (for a chooser)."""
    return _contexts(_load(text))


def _contexts(config: dict[str, Any]) -> tuple[list[str], str]:
    names = [str(entry["name"]) for entry in _entries(config, "contexts")]
    return names, _string(config, "current-context", "the kubeconfig")


def _load(text: str) -> dict[str, Any]:
    """The kubeconfig as data. Rule: at most 256 KiB, no anchors or aliases, and the shapes ICC reads are
    checked (lists of mappings with names) before anything uses them."""
    config = load_bounded(
        text,
        field="kubeconfig",
        what="a kubeconfig",
        max_bytes=MAX_KUBECONFIG_BYTES,
        max_depth=MAX_KUBECONFIG_DEPTH,
        hint="; upload a flattened kubeconfig (kubectl config view --raw --flatten --minify)",
    )
    if not isinstance(config, dict) or not isinstance(config.get("contexts"), list):
        raise DomainError("not a kubeconfig: expected a mapping with a 'contexts' list", field="kubeconfig")
    for section in ("clusters", "users", "contexts"):
        _entries(config, section)  # every entry's shape, before any is used
    return config


def _entries(config: dict[str, Any], section: str) -> list[dict[str, Any]]:
    """The entries of ``clusters``/``users``/``contexts``: a list of ``{name: str, <kind>: mapping}``."""
    entries = config.get(section)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DomainError(f"the kubeconfig's {section} is not a list", field="kubeconfig")
    kind = section[:-1]
    for index, entry in enumerate(entries):
        where = f"{section}[{index}]"
        if not isinstance(entry, dict):
            raise DomainError(f"the kubeconfig's {where} is not a mapping", field="kubeconfig")
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DomainError(f"the kubeconfig's {where} has no name (a string)", field="kubeconfig")
        if entry.get(kind) is not None and not isinstance(entry[kind], dict):
            raise DomainError(f"the kubeconfig's {where}.{kind} is not a mapping", field="kubeconfig")
    return entries


def _string(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DomainError(f"{where}: {key} is not a string", field="kubeconfig")
    return value


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in _entries(config, section):
        if entry["name"] == name:
            body = entry.get(section[:-1])
            if isinstance(body, dict):
                return body
    raise DomainError(f"the kubeconfig has no {section[:-1]} named {name!r}", field="kubeconfig")


FLATTEN = "upload a flattened kubeconfig (kubectl config view --raw --flatten --minify)"


def from_kubeconfig(text: str, *, context: str = "", allow_insecure: bool) -> tuple[Credentials, str]:
    """Credentials for one context of a kubeconfig, and the context's name."""
    config = _load(text)
    chosen = _choose_context(config, context)
    ctx = _named(config, "contexts", chosen)
    cluster = _named(config, "clusters", _string(ctx, "cluster", f"context {chosen!r}"))
    user_name = _string(ctx, "user", f"context {chosen!r}")
    user = _named(config, "users", user_name)
    where_cluster = f"the cluster of context {chosen!r}"
    server, skip, ca = _cluster_tls(cluster, where_cluster, allow_insecure=allow_insecure)
    token, cert, key = _user_auth(user, f"user {user_name!r}")
    if not token and not cert:
        raise DomainError(f"the user of context {chosen!r} has no token or client certificate", field="kubeconfig")
    if server.startswith("https://") and not ca and not skip:
        raise DomainError("the cluster has no certificate-authority-data to verify the server", field="kubeconfig")
    return (
        Credentials(
            server=server,
            token=token,
            ca_data=ca,
            client_cert_data=cert,
            client_key_data=key,
            insecure_skip_tls_verify=skip,
            tls_server_name=_string(cluster, "tls-server-name", where_cluster),
        ),
        chosen,
    )


def _choose_context(config: dict[str, Any], context: str) -> str:
    """The context asked for, else the kubeconfig's current one, else its only one."""
    names, current = _contexts(config)
    if not names:
        raise DomainError("the kubeconfig has no contexts", field="kubeconfig")
    chosen = context.strip() or current or (names[0] if len(names) == 1 else "")
    if not chosen:
        raise DomainError(f"choose a context: {', '.join(names)}", field="context")
    if chosen not in names:
        raise DomainError(f"no context named {chosen!r}; the kubeconfig has: {', '.join(names)}", field="context")
    return chosen


def _cluster_tls(cluster: dict[str, Any], where: str, *, allow_insecure: bool) -> tuple[str, bool, str]:
    """The cluster's (server, insecure-skip-tls-verify, CA PEM)."""
    server = check_server(_string(cluster, "server", where), allow_insecure=allow_insecure, field="kubeconfig")
    if cluster.get("certificate-authority") and not cluster.get("certificate-authority-data"):
        raise DomainError(
            f"the cluster's certificate-authority is a file on another machine; {FLATTEN}", field="kubeconfig"
        )
    skip = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(skip, bool):
        raise DomainError(f"{where}: insecure-skip-tls-verify is not true or false", field="kubeconfig")
    if skip and not allow_insecure:
        raise DomainError(
            "the kubeconfig sets insecure-skip-tls-verify; set allow_insecure to accept an unverified server",
            field="kubeconfig",
            code="insecure_server",
        )
    ca_text = _string(cluster, "certificate-authority-data", where)
    return server, skip, _b64_pem(ca_text, "certificate-authority-data") if ca_text else ""


def _refuse_unsupported_auth(user: dict[str, Any]) -> None:
    """Plugins ICC cannot run, basic authentication, and files on another machine."""
    if "exec" in user:
        command = (user.get("exec") or {}).get("command", "?") if isinstance(user.get("exec"), dict) else "?"
        raise DomainError(
            f"the user runs an exec credential plugin ({str(command)[:100]!r}), which ICC cannot run; use a "
            "ServiceAccount token or a client certificate instead",
            field="kubeconfig",
            code="exec_plugin",
        )
    if "auth-provider" in user:
        raise DomainError(
            "the user uses an auth-provider plugin, which ICC cannot run; use a ServiceAccount token instead",
            field="kubeconfig",
        )
    if user.get("username") or user.get("password"):
        raise DomainError("basic authentication (username/password) is not supported", field="kubeconfig")
    for key in ("tokenFile", "client-certificate", "client-key"):
        if user.get(key):
            raise DomainError(f"the user's {key} is a file on another machine; {FLATTEN}", field="kubeconfig")


def _user_auth(user: dict[str, Any], where: str) -> tuple[str, str, str]:
    """The user's (token, client certificate PEM, client key PEM)."""
    _refuse_unsupported_auth(user)
    token = _string(user, "token", where).strip()
    cert_text = _string(user, "client-certificate-data", where)
    key_text = _string(user, "client-key-data", where)
    cert = _b64_pem(cert_text, "client-certificate-data") if cert_text else ""
    key = _b64_pem(key_text, "client-key-data") if key_text else ""
    if bool(cert) != bool(key):
        raise DomainError(
            "a client certificate needs both client-certificate-data and client-key-data", field="kubeconfig"
        )
    return token, cert, key


def in_cluster() -> Credentials:
    """ICC's own ServiceAccount, when ICC runs inside the cluster."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (IN_CLUSTER_DIR / "token").exists():
        raise DomainError(
            "ICC is not running inside a Kubernetes pod (no KUBERNETES_SERVICE_HOST or ServiceAccount token)",
            field="auth_mode",
        )
    if ":" in host:
        host = f"[{host}]"
    return Credentials(server=f"https://{host}:{port}", in_cluster=True)


def resolve(credentials: Credentials) -> Credentials:
    """Credentials ready to use: in-cluster ones read the (possibly rotated) token and CA now."""
    if not credentials.in_cluster:
        return credentials
    token = (IN_CLUSTER_DIR / "token").read_text().strip()
    ca = (IN_CLUSTER_DIR / "ca.crt").read_text()
    return Credentials(server=credentials.server, token=token, ca_data=ca, in_cluster=True)
