"""Core kernel: advisory locks on PostgreSQL, the task decorator, publish after commit."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from apps.core.events import group_for, publish
from apps.core.locks import advisory_lock, lock_key
from apps.core.tasking import icc_task


@pytest.mark.django_db(transaction=True)
def test_an_advisory_lock_excludes_other_connections_until_released():
    assert connection.vendor == "postgresql"
    results: list[bool] = []

    def other_process_tries() -> None:
        from django.db import connections

        try:
            with advisory_lock("cluster-sync:42") as got:
                results.append(got)
        finally:
            connections.close_all()

    with advisory_lock("cluster-sync:42") as got:
        assert got
        worker = threading.Thread(target=other_process_tries)
        worker.start()
        worker.join(10)
    assert results == [False], "a second holder must not get the lock"

    worker = threading.Thread(target=other_process_tries)
    worker.start()
    worker.join(10)
    assert results == [False, True], "released locks can be taken again"


def test_lock_keys_are_stable_signed_64_bit():
    assert lock_key("a") == lock_key("a") != lock_key("b")
    assert -(2**63) <= lock_key("anything") < 2**63


def test_the_task_decorator_insists_on_known_queues_and_sane_limits():
    with pytest.raises(ValueError, match="unknown queue"):
        icc_task(name="x.y", queue="nope")
    with pytest.raises(ValueError, match="time_limit must exceed"):
        icc_task(name="x.y", soft_time_limit=10, time_limit=5)

    @icc_task(name="tests.add", queue="default", soft_time_limit=5)
    def add(a: int, b: int) -> int:
        return a + b

    assert add.name == "tests.add"
    assert add.queue == "default"
    assert (add.soft_time_limit, add.time_limit) == (5, 35)
    assert add(2, 3) == 5


def test_topic_names_are_validated():
    assert group_for("cluster.42") == "topic.cluster.42"
    for bad in ("", "Upper", "has space", "x" * 95):
        with pytest.raises(ValueError):
            group_for(bad)


@pytest.mark.django_db(transaction=True)
def test_publish_waits_for_commit(monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr("apps.core.events.send_many", lambda items: sent.extend(topic for topic, _ in items))
    with transaction.atomic():
        publish("dashboard")
        assert sent == []
    assert sent == ["dashboard"]
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("dashboard")
        raise RuntimeError
    assert sent == ["dashboard"]


async def test_the_embedded_channel_layer_delivers_sends_from_worker_threads():
    """The embedded worker publishes from its own threads; the web loop's receiver must wake at once."""
    import asyncio

    from asgiref.sync import async_to_sync

    from apps.core.channel_layers import ThreadSafeInMemoryChannelLayer

    # Debug mode makes asyncio raise on non-thread-safe calls into this loop from another thread,
    # which is exactly what Channels' plain InMemoryChannelLayer would do here.
    asyncio.get_running_loop().set_debug(True)
    layer = ThreadSafeInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("topic.dashboard", channel)
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)

    errors: list[BaseException] = []

    def from_worker_thread() -> None:
        try:
            async_to_sync(layer.group_send)("topic.dashboard", {"type": "topic.event", "topic": "dashboard"})
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_worker_thread)
    thread.start()
    done, _ = await asyncio.wait({receiving}, timeout=2)
    thread.join(2)
    receiving.cancel()
    assert errors == []
    assert done and receiving.result()["topic"] == "dashboard"
