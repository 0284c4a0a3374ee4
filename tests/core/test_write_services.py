"""Every write is one service: the portal and the API call the same ``<entity>_<action>(*, ..., by)`` and so
record the same audit event and publish the same live update (after commit)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.audit.models import AuditEvent
from apps.clusters.models import Application, Cluster
from apps.core.events import group_for
from apps.scaler.events import FLEET
from apps.scaler.events import application as application_topic
from apps.scaler.models import ScalerSettings, ScalingPolicy
from tests.support.clients import logged_in
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db


class Listener:
    """A real channel-layer subscriber of one topic's group (Redis in the tests)."""

    def __init__(self, topic: str) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group_for(topic), self.channel)

    def received(self) -> dict[str, Any]:
        async def receive() -> dict[str, Any]:
            import asyncio

            return await asyncio.wait_for(self.layer.receive(self.channel), 5)

        return async_to_sync(receive)()


@pytest.fixture
def shop() -> Application:
    cluster = cluster_row("ws")
    app = Application.objects.create(cluster=cluster, namespace="prod", name="shop")
    ScalingPolicy.objects.create(application=app, name="default")
    return app


def last_event(action: str) -> AuditEvent:
    event = AuditEvent.objects.filter(action=action).order_by("-seq").first()
    assert event is not None, action
    return event


@pytest.mark.parametrize("through", ["api", "portal"])
def test_the_kill_switch_is_one_service(shop, admin_persona, django_capture_on_commit_callbacks, through):
    listener = Listener(application_topic(shop.pk))
    client = logged_in(admin_persona)
    with django_capture_on_commit_callbacks(execute=True):
        if through == "api":
            response = client.post(
                f"/api/v1/scaler/applications/{shop.pk}/kill-switch/",
                {"on": True, "reason": "incident 7"},
                content_type="application/json",
            )
            assert response.status_code == 200, response.content
        else:
            response = client.post(f"/scaler/applications/{shop.pk}/kill-switch/", {"on": "on", "reason": "incident 7"})
            assert response.status_code == 302
    event = last_event("scaler.kill_switch.on")
    assert (event.actor_name, event.target_id, event.message) == (admin_persona.username, str(shop.pk), "incident 7")
    assert event.metadata == {"policies": 1}
    message = listener.received()
    assert (message["topic"], message["payload"]) == (application_topic(shop.pk), {"kind": "kill_switch"})
    assert ScalingPolicy.objects.get(application=shop).kill_switch


@pytest.mark.parametrize("through", ["api", "portal"])
def test_the_global_pause_is_one_service(shop, admin_persona, django_capture_on_commit_callbacks, through):
    listener = Listener(FLEET)
    client = logged_in(admin_persona)
    with django_capture_on_commit_callbacks(execute=True):
        if through == "api":
            response = client.post(
                "/api/v1/scaler/pause/", {"on": True, "reason": "freeze"}, content_type="application/json"
            )
            assert response.status_code == 200, response.content
        else:
            response = client.post("/scaler/pause/", {"on": "on", "reason": "freeze", "confirm": "on"})
            assert response.status_code == 302
    event = last_event("scaler.global_pause.on")
    assert (event.actor_name, event.message) == (admin_persona.username, "freeze")
    assert listener.received()["topic"] == FLEET
    assert ScalerSettings.objects.get(pk=1).paused


@pytest.mark.parametrize("through", ["api", "portal"])
def test_an_operator_without_rights_is_refused_the_same_way(shop, viewer_persona, through):
    client = logged_in(viewer_persona)
    if through == "api":
        response = client.post(
            f"/api/v1/scaler/applications/{shop.pk}/kill-switch/",
            {"on": True, "reason": "x"},
            content_type="application/json",
        )
    else:
        response = client.post(f"/scaler/applications/{shop.pk}/kill-switch/", {"on": "on", "reason": "x"})
    assert response.status_code == 403
    assert not ScalingPolicy.objects.get(application=shop).kill_switch


@pytest.mark.parametrize("through", ["api", "portal"])
def test_sync_now_is_one_service(shop, make_user, django_capture_on_commit_callbacks, through):
    from apps.clusters import events as cluster_events
    from apps.users.models import RoleBinding

    operator = make_user("sync-operator")
    RoleBinding.objects.create(
        user=operator.user, role="operator", scope_kind="cluster", scope_cluster=str(shop.cluster_id)
    )
    listener = Listener(cluster_events.cluster(shop.cluster_id))
    client = logged_in(operator)
    with django_capture_on_commit_callbacks(execute=True):
        if through == "api":
            response = client.post(f"/api/v1/clusters/{shop.cluster_id}/sync/", content_type="application/json")
            assert response.status_code == 202, response.content
        else:
            response = client.post(f"/clusters/{shop.cluster_id}/sync/")
            assert response.status_code == 302
    event = last_event("clusters.cluster.sync")
    assert (event.actor_name, event.target_id, event.message) == (
        operator.username,
        str(shop.cluster_id),
        "full sync requested",
    )
    assert event.scope_cluster == str(shop.cluster_id)
    message = listener.received()
    assert (message["topic"], message["payload"]) == (cluster_events.cluster(shop.cluster_id), {"reason": "sync"})


@pytest.mark.parametrize("through", ["api", "portal"])
def test_sync_of_a_paused_cluster_is_refused_the_same_way(shop, admin_persona, through):
    Cluster.objects.filter(pk=shop.cluster_id).update(paused=True)
    client = logged_in(admin_persona)
    if through == "api":
        response = client.post(f"/api/v1/clusters/{shop.cluster_id}/sync/", content_type="application/json")
        assert response.status_code == 409
        assert "paused" in response.json()["error"]["fields"]
    else:
        response = client.post(f"/clusters/{shop.cluster_id}/sync/", follow=True)
        assert "is paused; resume it first" in response.content.decode()
    assert not AuditEvent.objects.filter(action="clusters.cluster.sync").exists()
