"""The live endpoint over the real Redis channel layer: authorized subscriptions, after-commit events."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from apps.core.events import publish
from tests.support.websocket import connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_channel_layer_is_redis():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


async def test_anonymous_clients_are_refused():
    communicator, connected, code = await connect("/ws/?topics=dashboard")
    assert not connected
    assert code == 4401
    await communicator.disconnect()


async def test_subscriber_gets_committed_events_and_nothing_from_rolled_back_ones(viewer_persona):
    cookie = await sync_to_async(session_cookie)(viewer_persona)
    communicator, connected, _ = await connect("/ws/?topics=dashboard", cookie)
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert 'id="dashboard-counters"' in snapshot and 'hx-swap-oob="true"' in snapshot

    @sync_to_async
    def rolled_back() -> None:
        from apps.users.services import user_create

        with pytest.raises(RuntimeError), transaction.atomic():
            user_create(username="ghost", password="Ghost-password-77x")
            raise RuntimeError("abort")

    await rolled_back()
    if not await communicator.receive_nothing(timeout=1):
        raise AssertionError(await communicator.receive_from())

    @sync_to_async
    def committed() -> None:
        from apps.users.services import user_create

        with transaction.atomic():
            user_create(username="newcomer", password="Newcomer-password-77x")
            user_create(username="other", password="Other-password-77x")
            publish("dashboard", {"reason": "test"})

    await committed()
    first = await communicator.receive_from(timeout=5)
    # viewer + newcomer + other: the fragment is re-rendered after the commit, once per publish.
    assert '<p class="icc-counter-value" id="counter-users">3</p>' in first
    await communicator.disconnect()


async def test_unknown_and_malformed_subscriptions_get_a_clear_status(viewer_persona):
    cookie = await sync_to_async(session_cookie)(viewer_persona)
    communicator, connected, _ = await connect("/ws/", cookie)
    assert connected
    await communicator.send_to(text_data='{"subscribe": "no-such-topic"}')
    assert "unknown topic no-such-topic" in await communicator.receive_from(timeout=5)
    await communicator.send_to(text_data="not json")
    assert "message is not JSON" in await communicator.receive_from(timeout=5)
    await communicator.send_to(text_data='{"subscribe": "dashboard"}')
    assert 'id="dashboard-counters"' in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


async def test_a_deactivated_user_stops_receiving(viewer_persona, monkeypatch):
    from apps.core import consumers

    monkeypatch.setattr(consumers, "USER_RECHECK_SECONDS", 0.0)
    cookie = await sync_to_async(session_cookie)(viewer_persona)
    communicator, connected, _ = await connect("/ws/?topics=dashboard", cookie)
    assert connected
    await communicator.receive_from(timeout=5)

    @sync_to_async
    def deactivate() -> None:
        from apps.users.services import user_update

        user_update(user=viewer_persona.user, is_active=False)

    await deactivate()
    message = await communicator.receive_from(timeout=5)
    assert "no longer allowed to follow dashboard" in message
    assert "dashboard-counters" not in message
    await communicator.disconnect()
    again, connected, code = await connect("/ws/?topics=dashboard", cookie)
    assert not connected and code == 4401, "an inactive user's session no longer authenticates"
    await again.disconnect()


async def test_subscriptions_outside_ones_scopes_are_refused(outsider_persona, viewer_persona):
    from apps.audit.events import history as history_topic

    cookie = await sync_to_async(session_cookie)(outsider_persona)
    mine = history_topic("users.user", str(outsider_persona.user.pk))
    theirs = history_topic("users.user", str(viewer_persona.user.pk))
    communicator, connected, _ = await connect(f"/ws/?topics={mine},{theirs},audit", cookie)
    assert connected
    messages = [await communicator.receive_from(timeout=5) for _ in range(3)]
    assert any(f'id="{mine.replace(".", "-")}"' in m for m in messages), "one's own history may be followed"
    assert any(f"not allowed to follow {theirs}" in m for m in messages)
    assert any("not allowed to follow audit" in m for m in messages)
    await communicator.disconnect()
