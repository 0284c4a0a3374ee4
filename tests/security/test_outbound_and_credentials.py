"""Security items 5-8, each written as the attack and the answer ICC must give.

5. Stored cluster credentials never follow a new address (and in-cluster mode is for global admins).
6. Outbound addresses are checked (link-local/metadata never, loopback only inside OUTBOUND_ALLOWED_CIDRS),
   when given and again at connect time; errors never repeat the remote server's answer.
7. Kubeconfig parsing is bounded (no anchors/aliases, 256 KiB, shapes checked: 400, never 500).
8. Custom PromQL is a global-admin feature; decision inputs keep only the application's own pods.

Real components: the kube-apiserver of tests/support/kube.py, the Prometheus of tests/support/prometheus.py, and a
tiny listener on 127.0.0.1 playing the attacker's server (it records every request and answers what the test tells it
to).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.clusters import crypto, services
from apps.clusters import gateway as gateways
from apps.clusters.credentials import Credentials
from apps.clusters.models import Cluster
from apps.core import context
from apps.core.errors import DomainError
from apps.scaler import evaluation, prometheus
from apps.scaler import services as scaler_services
from apps.scaler.models import ScalingPolicy
from apps.users.models import RoleBinding
from tests.support.clients import error_fields as fields
from tests.support.clients import forced_login as client_for
from tests.support.clients import patch_json as patch
from tests.support.clients import post_json as post
from tests.support.components import free_port
from tests.support.kube import KubeCluster
from tests.support.prometheus import PrometheusServer
from tests.support.rows import application_row, cluster_row

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

CLUSTERS = "/api/v1/clusters"
POLICIES = "/api/v1/scaler/policies"
MARKER = "SECRET-FROM-THE-REMOTE-BODY-7f3a"


# --- the attacker's server ---------------------------------------------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 that records every request it receives and answers ``reply`` (raw bytes)."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply or http_reply(404, json.dumps({"kind": "Status", "message": "nothing here"}))
        self.requests: list[bytes] = []
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="attacker-listener", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    self.requests.append(data)
                    conn.sendall(self.reply)
                except OSError:
                    continue

    def authorizations(self) -> list[str]:
        found = []
        for request in self.requests:
            for line in request.split(b"\r\n"):
                if line.lower().startswith(b"authorization:"):
                    found.append(line.split(b":", 1)[1].strip().decode(errors="replace"))
        return found

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)


def http_reply(status: int, body: str, content_type: str = "application/json") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + data


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


# --- helpers -----------------------------------------------------------------------------------------------------


def kubeconfig_of(kube: KubeCluster, server: str = "") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": server or kube.url,
                        "certificate-authority-data": base64.b64encode(kube.ca_path.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": kube.token}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "test", "user": "admin"}},
                {"name": "other", "context": {"cluster": "test", "user": "admin"}},
            ],
        }
    )


def register(kube: KubeCluster, **connection: Any) -> Cluster:
    context.start()  # a service call outside a request: the shell's trust, not the last request's user
    args = {"auth_mode": "token", "api_url": kube.url, "token": kube.token, "ca_data": kube.ca_path.read_text()}
    return services.cluster_register(name=f"c-{uuid.uuid4().hex[:8]}", **{**args, **connection})


def stored_token(cluster: Cluster) -> str:
    return Credentials.from_dict(crypto.decrypt(bytes(Cluster.objects.get(pk=cluster.pk).credentials))).token


def cluster_admin(make_user: Any, cluster: Cluster, name: str = "cara-cluster-admin") -> Any:
    persona = make_user(name)
    RoleBinding.objects.create(user=persona.user, role="admin", scope_kind="cluster", scope_cluster=str(cluster.pk))
    return persona.user


# --- 5. stored credentials never follow a new address ------------------------------------------------------------


def test_a_cluster_admin_cannot_send_the_stored_token_to_a_server_of_theirs(kube_apiserver, make_user, listener):
    cluster = register(kube_apiserver)
    before = bytes(Cluster.objects.get(pk=cluster.pk).credentials)
    attacker = client_for(cluster_admin(make_user, cluster))

    # The attack: move the API URL to my listener (plain HTTP, consent given) and let ICC "test the connection"
    # with the token it keeps.
    response = patch(attacker, f"{CLUSTERS}/{cluster.pk}/", {"api_url": listener.url, "allow_insecure": True})
    assert response.status_code == 400, response.content
    assert "token" in fields(response), response.json()
    assert "never sent to an address" in " ".join(fields(response)["token"])
    assert listener.connections == 0 and kube_apiserver.token not in " ".join(listener.authorizations())
    assert bytes(Cluster.objects.get(pk=cluster.pk).credentials) == before

    # The listener does record tokens: one the attacker sends themselves reaches it (and only that one).
    own = f"attacker-own-{uuid.uuid4().hex}"
    response = patch(
        attacker, f"{CLUSTERS}/{cluster.pk}/", {"api_url": listener.url, "allow_insecure": True, "token": own}
    )
    assert response.status_code == 400  # the listener is no API server
    assert listener.authorizations() and all(a == f"Bearer {own}" for a in listener.authorizations())
    assert stored_token(cluster) == kube_apiserver.token

    # Rotating the token at the same address still needs nothing else (the CA bundle is kept).
    response = patch(attacker, f"{CLUSTERS}/{cluster.pk}/", {"token": kube_apiserver.token, "description": "x"})
    assert response.status_code == 200, response.content


def test_a_new_auth_mode_or_kubeconfig_context_needs_the_credentials_again(kube_apiserver, make_user, listener):
    token_cluster = register(kube_apiserver)
    kube_cluster = register(
        kube_apiserver,
        auth_mode="kubeconfig",
        kubeconfig=kubeconfig_of(kube_apiserver),
        api_url="",
        token="",
        ca_data="",
    )
    admin = cluster_admin(make_user, token_cluster)
    RoleBinding.objects.create(user=admin, role="admin", scope_kind="cluster", scope_cluster=str(kube_cluster.pk))
    attacker = client_for(admin)

    cases = [
        (kube_cluster, {"auth_mode": "token", "api_url": listener.url, "allow_insecure": True}, "token"),
        (kube_cluster, {"auth_mode": "token"}, "token"),  # the same address, another mode: still the token
        (kube_cluster, {"context": "other"}, "kubeconfig"),
        (token_cluster, {"auth_mode": "kubeconfig"}, "kubeconfig"),
        (token_cluster, {"ca_data": ""}, "token"),  # the same address, verified differently: the token again
        (token_cluster, {"allow_insecure": True}, "token"),
    ]
    for cluster, change, field in cases:
        before = bytes(Cluster.objects.get(pk=cluster.pk).credentials)
        response = patch(attacker, f"{CLUSTERS}/{cluster.pk}/", change)
        assert response.status_code == 400, (change, response.content)
        assert field in fields(response), (change, response.json())
        assert bytes(Cluster.objects.get(pk=cluster.pk).credentials) == before
    assert listener.connections == 0


def test_only_a_global_admin_may_choose_in_cluster_mode(kube_apiserver, make_user):
    cluster = register(kube_apiserver)
    admin = cluster_admin(make_user, cluster)
    attacker = client_for(admin)
    response = patch(attacker, f"{CLUSTERS}/{cluster.pk}/", {"auth_mode": "in_cluster"})
    assert response.status_code == 403, response.content
    assert "auth_mode" in fields(response)
    assert Cluster.objects.get(pk=cluster.pk).auth_mode == "token"

    # Registering is global configure already; the service refuses in-cluster mode to anyone else on its own.
    response = post(attacker, f"{CLUSTERS}/", {"name": "inside", "auth_mode": "in_cluster"})
    assert response.status_code == 403
    context.start(user=admin)
    with pytest.raises(DomainError) as caught:
        services.cluster_register(name="inside", auth_mode="in_cluster")
    assert caught.value.status == 403 and caught.value.field == "auth_mode"

    # A global admin passes the rule (and learns ICC is not running in a pod here).
    boss = client_for(make_user("gia-global-admin", role="admin").user)
    response = patch(boss, f"{CLUSTERS}/{cluster.pk}/", {"auth_mode": "in_cluster"})
    assert response.status_code == 400, response.content
    assert "not running inside a Kubernetes pod" in " ".join(fields(response)["auth_mode"])


# --- 6. outbound addresses are checked ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/",  # the cloud metadata service
        "https://[::ffff:169.254.169.254]/",  # the same, IPv4-mapped
        "https://[::ffff:a9fe:a9fe]:443/",  # the same, in hex
        "https://2852039166/",  # the same, as one decimal number (resolves to 169.254.169.254)
        "https://metadata.google.internal/",
        "https://[fe80::1]:6443/",
        "https://0.0.0.0:6443/",
        "https://[::]:6443/",
    ],
)
def test_registering_a_link_local_or_metadata_address_is_refused(kube_apiserver, admin_persona, url):
    c = client_for(admin_persona.user)
    started = time.monotonic()
    response = post(
        c,
        f"{CLUSTERS}/",
        {
            "name": "meta",
            "auth_mode": "token",
            "api_url": url,
            "token": "t",
            "ca_data": kube_apiserver.ca_path.read_text(),
        },
    )
    assert response.status_code == 400, response.content
    assert "api_url" in fields(response), response.json()
    assert response.json()["error"]["code"] == "outbound_refused"
    assert time.monotonic() - started < 5  # refused, not tried
    assert not Cluster.objects.exists()

    # From a kubeconfig, the kubeconfig is named.
    text = kubeconfig_of(kube_apiserver, server=url.rstrip("/"))
    response = post(c, f"{CLUSTERS}/", {"name": "meta", "auth_mode": "kubeconfig", "kubeconfig": text})
    assert response.status_code == 400 and "kubeconfig" in fields(response), response.content


def test_loopback_is_allowed_only_inside_outbound_allowed_cidrs(kube_apiserver, admin_persona, settings):
    cluster = register(kube_apiserver)  # the test suite allows 127.0.0.0/8 (the apiserver runs there)
    assert gateways.for_cluster(cluster).version()["gitVersion"] == "v1.20.2"

    settings.OUTBOUND_ALLOWED_CIDRS = []  # production's default
    response = post(
        client_for(admin_persona.user),
        f"{CLUSTERS}/",
        {
            "name": "loop",
            "auth_mode": "token",
            "api_url": kube_apiserver.url,
            "token": kube_apiserver.token,
            "ca_data": kube_apiserver.ca_path.read_text(),
        },
    )
    assert response.status_code == 400 and "api_url" in fields(response), response.content
    assert "loopback" in " ".join(fields(response)["api_url"])

    # Checked at connect time too: the registered cluster's next connection is refused.
    gateways.forget(cluster.pk)
    with pytest.raises(gateways.OutboundBlocked) as caught:
        gateways.for_cluster(cluster).version()
    assert "loopback" in caught.value.message

    # Link-local stays refused whatever the setting allows.
    settings.OUTBOUND_ALLOWED_CIDRS = ["0.0.0.0/0", "::/0"]
    with pytest.raises(DomainError) as refused:
        services.build_credentials(auth_mode="token", api_url="https://169.254.169.254", token="t", allow_insecure=True)
    assert refused.value.field == "api_url"


def test_dns_answering_differently_at_connect_time_is_refused(kube_apiserver, admin_persona, listener, monkeypatch):
    """A rebinding name: the check at registration resolves to a harmless address, the connection moments
    later to the metadata service. ICC checks the addresses it connects to, so the second answer is refused."""
    real = socket.getaddrinfo
    answers = iter([("127.0.0.1", listener.port)])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.attacker.test":
            return real(host, port, *args, **kwargs)
        address = next(answers, ("169.254.169.254", port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address)]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    started = time.monotonic()
    response = post(
        client_for(admin_persona.user),
        f"{CLUSTERS}/",
        {
            "name": "rebind",
            "auth_mode": "token",
            "api_url": f"http://rebind.attacker.test:{listener.port}",
            "token": "t",
            "allow_insecure": True,
        },
    )
    assert response.status_code == 400, response.content
    assert "api_url" in fields(response)
    assert "169.254.169.254" in " ".join(fields(response)["api_url"])
    assert time.monotonic() - started < 5 and listener.connections == 0


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (http_reply(404, json.dumps({"kind": "Status", "reason": "NotFound", "message": MARKER})), "HTTP 404"),
        (http_reply(403, json.dumps({"kind": "Status", "code": 403, "message": MARKER})), "HTTP 403"),
        (http_reply(400, f"<html>{MARKER}</html>", "text/html"), "HTTP 400"),
        (http_reply(409, json.dumps({"message": MARKER, "reason": MARKER})), "HTTP 409"),
        (f"SSH-2.0-{MARKER}\r\n".encode(), "not HTTP"),  # another service's banner
    ],
    ids=["status-404", "status-403", "html-400", "json-409", "banner"],
)
def test_a_remote_error_body_is_never_repeated_by_the_gateway(admin_persona, listener, reply, says):
    listener.reply = reply
    response = post(
        client_for(admin_persona.user),
        f"{CLUSTERS}/",
        {"name": "echo", "auth_mode": "token", "api_url": listener.url, "token": "t", "allow_insecure": True},
    )
    assert response.status_code == 400, response.content
    assert listener.connections >= 1  # it did answer
    text = response.content.decode()
    assert MARKER not in text
    assert says in text, text


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (http_reply(503, json.dumps({"status": "error", "errorType": "unavailable", "error": MARKER})), "HTTP 503"),
        (http_reply(500, f"oops {MARKER}", "text/plain"), "HTTP 500"),
        (http_reply(200, json.dumps({"status": "error", "error": MARKER})), "HTTP 200"),
        (http_reply(400, json.dumps({"status": "error", "errorType": "bad_data", "error": MARKER})), "bad_data"),
        (
            http_reply(
                400,
                json.dumps(
                    {
                        "status": "error",
                        "errorType": "bad_data",
                        "error": f'invalid parameter "query": 1:33: parse error: {MARKER}',
                    }
                ),
            ),
            "parse error at line 1, column 33",
        ),
        (http_reply(422, json.dumps({"status": "error", "errorType": "execution", "error": MARKER})), "execution"),
    ],
    ids=["503-json", "500-text", "200-not-success", "400-bad-data", "400-parse-error", "422-execution"],
)
def test_a_remote_error_body_is_never_repeated_by_the_prometheus_client(settings, listener, reply, says):
    settings.PROMETHEUS_URL = listener.url
    listener.reply = reply
    with pytest.raises(DomainError) as caught:
        prometheus.query("up")
    assert MARKER not in caught.value.message
    assert says in caught.value.message, caught.value.message


def test_prometheus_at_a_metadata_address_is_refused_at_connect_time(settings, admin_persona, make_user):
    settings.PROMETHEUS_URL = "http://169.254.169.254:9090"
    started = time.monotonic()
    with pytest.raises(prometheus.PrometheusUnavailable) as caught:
        prometheus.query("up")
    assert "169.254.169.254" in caught.value.message and "metadata" in caught.value.message
    assert time.monotonic() - started < 2


# --- 7. bounded kubeconfig parsing -------------------------------------------------------------------------------

BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "contexts: *i\nclusters: *i\nusers: *i\n"
)
GOOD_PARTS = (
    "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]\n"
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param(BILLION_LAUGHS, "anchors and aliases", id="billion-laughs"),
        pytest.param(GOOD_PARTS + "users: [{name: u, user: &t {token: abc}}]\n", "anchors and aliases", id="anchor"),
        pytest.param("contexts: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper", id="deep-nesting"),
        pytest.param(
            GOOD_PARTS + "users: [{name: u, user: {token: abc}}]\n# " + "x" * (300 * 1024) + "\n",
            "256 KiB",
            id="over-256KiB",
        ),
        pytest.param(
            "contexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: a string\nusers: []\n",
            "not a list",
            id="clusters-a-string",
        ),
        pytest.param(GOOD_PARTS + "users: [1, 2]\n", "users[0] is not a mapping", id="users-not-mappings"),
        pytest.param(
            GOOD_PARTS + "users: [{name: u, user: [token, abc]}]\n", "users[0].user is not a mapping", id="user-a-list"
        ),
        pytest.param(GOOD_PARTS + "users: [{name: [u], user: {token: abc}}]\n", "has no name", id="name-a-list"),
        pytest.param(
            GOOD_PARTS + "users: [{name: u, user: {token: [a, b]}}]\n", "token is not a string", id="token-a-list"
        ),
        pytest.param(
            GOOD_PARTS + "users: [{name: u, user: {exec: run-me}}]\n", "exec credential plugin", id="exec-a-string"
        ),
        pytest.param(
            GOOD_PARTS + "users: [{name: u, user: {client-certificate-data: 5, client-key-data: 6}}]\n",
            "is not a string",
            id="cert-data-numbers",
        ),
        pytest.param(
            "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: a}}]\n"
            "clusters: [{name: k, cluster: {server: 'https://x', insecure-skip-tls-verify: 'yes please'}}]\n",
            "insecure-skip-tls-verify is not true or false",
            id="skip-tls-a-string",
        ),
        pytest.param("contexts: []\n---\ncontexts: []\n", "not valid YAML", id="two-documents"),
    ],
)
def test_hostile_kubeconfigs_are_refused_with_a_clear_400(admin_persona, text, says):
    c = client_for(admin_persona.user)
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = post(
            c, f"{CLUSTERS}/", {"name": "evil", "auth_mode": "kubeconfig", "kubeconfig": text, "allow_insecure": True}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400, response.content
    assert "kubeconfig" in fields(response), response.json()
    assert says in " ".join(fields(response)["kubeconfig"]), response.json()
    assert time.monotonic() - started < 5
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB allocated"


def test_the_portal_refuses_an_alias_bomb_too(admin_persona):
    c = client_for(admin_persona.user)
    response = c.post("/clusters/new/", {"name": "evil", "auth_mode": "kubeconfig", "kubeconfig_text": BILLION_LAUGHS})
    assert response.status_code == 400
    assert "anchors and aliases" in response.content.decode()


# --- 8. custom PromQL is a global-admin feature ------------------------------------------------------------------


@pytest.fixture
def prom(prometheus_server: PrometheusServer, settings: Any) -> PrometheusServer:
    settings.PROMETHEUS_URL = prometheus_server.url
    return prometheus_server


@pytest.fixture
def shop() -> Iterator[dict[str, Any]]:
    """Applications ``shop`` (2 pods) and ``bank`` (1 pod) in one namespace of a cluster nobody answers for."""
    namespace = f"sec-{uuid.uuid4().hex[:8]}"
    server = f"https://127.0.0.1:{free_port()}"  # connection refused: evaluations go on without the cluster
    cluster = cluster_row(f"c-{namespace}", server, token="t")
    out: dict[str, Any] = {"cluster": cluster, "namespace": namespace}
    for name, pods in (("shop", ["web-1", "web-2"]), ("bank", ["api-1"])):
        out[name] = application_row(cluster, namespace, name, pods, uid=f"-{namespace}")
        out[f"{name}_pods"] = [f"{name}-{pod}" for pod in pods]
    yield out
    gateways.forget(cluster.pk)


CUSTOM = {
    "name": "load",
    "source": "custom",
    "kind": "per_pod",
    "query": 'test_load{namespace="$namespace"}',
    "target": 10,
}


def test_only_a_global_admin_may_store_custom_promql(make_user, shop, prom):
    cluster = shop["cluster"]
    cluster_adm = make_user("carl-cluster-admin")
    RoleBinding.objects.create(user=cluster_adm.user, role="admin", scope_kind="cluster", scope_cluster=str(cluster.pk))
    app_adm = make_user("anna-app-admin")
    RoleBinding.objects.create(
        user=app_adm.user,
        role="admin",
        scope_kind="application",
        scope_cluster=str(cluster.pk),
        scope_application="shop",
    )
    policy = {"application": shop["shop"].pk, "mode": "recommend", "min_replicas": 1, "max_replicas": 5}

    # The attack: a query that reads every pod of the namespace (the bank's too), stored by an admin of the shop.
    for persona in (cluster_adm, app_adm):
        response = post(client_for(persona.user), f"{POLICIES}/", {**policy, "metrics": [CUSTOM]})
        assert response.status_code == 403, response.content
        assert "metrics" in fields(response) and "global scope" in " ".join(fields(response)["metrics"])
    assert not ScalingPolicy.objects.exists()
    # Templates (keyed on the application's pods) are theirs to pick.
    response = post(client_for(app_adm.user), f"{POLICIES}/", {**policy, "metrics": [{"name": "cpu", "target": 0.6}]})
    assert response.status_code == 201, response.content
    created = response.json()["id"]
    response = patch(client_for(app_adm.user), f"{POLICIES}/{created}/", {"metrics": [CUSTOM]})
    assert response.status_code == 403 and "metrics" in fields(response)

    # A global admin may; the application's admin may then change other fields, resending the metric unchanged,
    # but not the query.
    boss = make_user("gina-global-admin", role="admin")
    response = patch(client_for(boss.user), f"{POLICIES}/{created}/", {"metrics": [CUSTOM]})
    assert response.status_code == 200, response.content
    response = patch(client_for(app_adm.user), f"{POLICIES}/{created}/", {"max_replicas": 4, "metrics": [CUSTOM]})
    assert response.status_code == 200, response.content
    widened = {**CUSTOM, "query": "test_load"}
    response = patch(client_for(app_adm.user), f"{POLICIES}/{created}/", {"metrics": [widened]})
    assert response.status_code == 403 and "metrics" in fields(response)
    assert ScalingPolicy.objects.get(pk=created).metrics[0]["query"] == CUSTOM["query"]


def test_decision_inputs_keep_only_the_applications_own_pods(shop, prom):
    namespace = shop["namespace"]
    for pod in shop["shop_pods"]:
        prom.exporter.set("test_load", namespace, pod, 10)
    prom.exporter.set("test_load", namespace, "bank-api-1", 990)  # another application's pod, same namespace
    try:
        deadline = time.monotonic() + 20
        while sorted(prom.value(f'test_load{{namespace="{namespace}"}}')) != [10, 10, 990]:
            assert time.monotonic() < deadline, "Prometheus did not scrape the exporter"
            time.sleep(0.2)
        context.start()  # a global admin's query (stored outside a request): it reads the bank's pod too
        policy = scaler_services.policy_create(
            application=shop["shop"], metrics=[CUSTOM], mode="recommend", min_replicas=1, max_replicas=10
        )
        decision = evaluation.evaluate(policy.pk, "manual")
        assert decision is not None
        load = decision.inputs["metrics"]["load"]
        assert load["source"] == "prometheus"
        assert sorted(load["values"]) == sorted(shop["shop_pods"]), load
        assert "bank-api-1" not in json.dumps(decision.inputs)
        assert load["dropped_series"] == 1
        assert decision.desired_replicas == 2, decision.reasons  # 10 per pod at target 10: the bank's 990 ignored
    finally:
        prom.exporter.clear(namespace)
