"""The outbound address policy: where ICC may connect when an address comes from a user (a cluster's API URL,
Prometheus, later webhooks).

Rules, checked on every address a host name resolves to (IPv4-mapped, -compatible and NAT64 IPv6 addresses are
judged as the IPv4 address inside them):

- link-local addresses (169.254.0.0/16, fe80::/10) and cloud-metadata addresses and names
  (169.254.169.254, fd00:ec2::254, 100.100.100.200, ``metadata.google.internal``) are always refused,
  whatever ``OUTBOUND_ALLOWED_CIDRS`` says: they are the instance's credentials, never a cluster;
- the unspecified address (``0.0.0.0``, ``::``) and multicast are always refused (the former reaches this
  machine under another name);
- loopback (127.0.0.0/8, ::1) only inside ``settings.OUTBOUND_ALLOWED_CIDRS`` (a local kind/k3d cluster, the
  test suite), refused by default in production;
- everything else (private networks included: clusters live there) is allowed.

The check runs twice: when the address is stored (:func:`check_outbound_url`, naming the form field) and when a
connection is opened (:func:`guard_pool_manager`, :func:`checked_session`), because DNS may answer differently
between the two. At connect time ICC connects to the very addresses it checked, never resolving again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from apps.core.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(DomainError):
    """ICC refuses to connect to this address (400 naming the field when the address was just given)."""

    code = "outbound_refused"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (deprecated, still routed by some stacks)
        return ipaddress.IPv4Address(int(address))
    return address


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(str(cidr), strict=False) for cidr in getattr(settings, "OUTBOUND_ALLOWED_CIDRS", [])]


def _loopback_refused(address: IPAddress) -> bool:
    return address.is_loopback and not any(address in network for network in _allowed_networks())


# The rules, in order: the first that holds says why.
REFUSALS: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda a: a in METADATA_ADDRESSES, "a cloud metadata address"),
    (lambda a: a.is_link_local, "a link-local address"),
    (lambda a: a.is_unspecified, "the unspecified address (it reaches this machine)"),
    (lambda a: a.is_multicast, "a multicast address"),
    (_loopback_refused, "a loopback address, not allowed by OUTBOUND_ALLOWED_CIDRS"),
)


def refusal(address: str) -> str | None:
    """Why ICC must not connect to ``address`` (an IP literal), or None when it may."""
    try:
        parsed = _embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return "not an IP address"
    return next((reason for rule, reason in REFUSALS if rule(parsed)), None)


def resolve_checked(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` results for ``host``, every one of them allowed; raises OutboundRefused naming the first
    refused address (one refused address refuses the host: DNS round-robin must not pick it later).
    Raises ``socket.gaierror`` when the name does not resolve."""
    name = host.strip("[]")
    if name.rstrip(".").lower() in METADATA_NAMES:
        raise OutboundRefused(f"ICC does not connect to {name}: it is a cloud metadata service")
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    for info in infos:
        address = str(info[4][0])
        reason = refusal(address)
        if reason:
            subject = "it" if address == name else address
            raise OutboundRefused(f"ICC does not connect to {name}: {subject} is {reason}")
    return infos


def check_outbound_url(url: str, *, field: str) -> None:
    """Raise a DomainError naming ``field`` unless ICC may connect to ``url``'s host (resolved now)."""
    parts = urlsplit((url or "").strip())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise DomainError(f"{url!r} has an invalid port", field=field) from None
    if parts.scheme not in ("http", "https") or not host:
        raise DomainError(f"{url or '(empty)'!r} is not an http(s) URL", field=field)
    if parts.username is not None or parts.password is not None:
        raise DomainError("a URL with a user name or password in it is not accepted", field=field)
    try:
        resolve_checked(host, port or (443 if parts.scheme == "https" else 80))
    except OutboundRefused as exc:
        raise OutboundRefused(exc.message, field=field) from None
    except (socket.gaierror, UnicodeError):
        raise DomainError(f"{host}: unknown host name", field=field, code="unreachable") from None


# --- connect time -----------------------------------------------------------------------------------------------


class _CheckedConnectionMixin:
    """Resolve, check every address, then connect to a checked address (never resolving again)."""

    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            infos = resolve_checked(self._dns_host.rstrip("."), self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        error: OSError | None = None
        for info in infos:
            try:
                sock = urllib3_connection.create_connection(
                    (str(info[4][0]), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
                continue
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


class CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    """A plain-HTTP connection that connects only to an address the outbound policy just allowed."""


class CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    """A TLS connection that connects only to an address the outbound policy just allowed."""


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


def guard_pool_manager(pool_manager: PoolManager) -> PoolManager:
    """Make every new connection of ``pool_manager`` pass the policy (raises OutboundRefused at connect)."""
    pool_manager.pool_classes_by_scheme = {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}
    return pool_manager


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard_pool_manager(self.poolmanager)


def checked_session() -> requests.Session:
    """A requests session whose connections pass the policy. Environment proxies and .netrc are ignored: a
    proxy would be checked instead of the real destination, and .netrc would hand out credentials."""
    session = requests.Session()
    session.trust_env = False
    adapter = _CheckedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
