"""The one websocket endpoint, ``/ws/``: subscribe to named topics, receive HTML fragments.

Topics come from the ``topics`` query parameter (so a reconnect re-subscribes by itself) or from
``{"subscribe": "<topic>"}`` messages. Each subscription is authorized through the topic registry;
right after subscribing, the current fragment is sent, so a page that reconnects catches up on
whatever it missed while the connection was down. Every pushed event is re-rendered for this viewer,
with permission re-checked per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from django.utils.html import escape

from apps.core import metrics, topics
from apps.core.events import group_for
from apps.core.sessions import session_user

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
MAX_TOPICS = 50
USER_RECHECK_SECONDS = 5.0  # a deactivated user stops receiving within this time
# The session is re-checked this often, pushes or not: logout, expiry, a password change or deactivation
# close the connection within it.
SESSION_RECHECK_SECONDS = 5.0


class LiveConsumer(AsyncWebsocketConsumer):
    subscribed: set[str]
    accepted: bool = False
    user_checked_at: float = 0.0
    _session_watch: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.subscribed = set()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            logger.info("websocket refused: not authenticated")
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        self.accepted = True
        self.user_checked_at = time.monotonic()
        metrics.WS_CONNECTIONS.inc()
        self._session_watch = asyncio.create_task(self._watch_session())
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        names = [n.strip() for raw in query.get("topics", []) for n in raw.split(",") if n.strip()]
        for name in names[:MAX_TOPICS]:
            await self.subscribe(name)

    async def disconnect(self, code: int) -> None:
        if not self.accepted:
            return
        if self._session_watch is not None and not self._session_watch.done():
            self._session_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._session_watch
        for name in list(self.subscribed):
            await self.channel_layer.group_discard(group_for(name), self.channel_name)
        if self.accepted:
            metrics.WS_CONNECTIONS.dec()

    async def _watch_session(self) -> None:
        """Close the connection (4401) once its session no longer signs the user in."""
        while True:
            await asyncio.sleep(SESSION_RECHECK_SECONDS)
            try:
                fresh = await database_sync_to_async(session_user)(self.scope)
            except Exception:  # cannot tell (database down): close; the browser reconnects when it can
                logger.warning("websocket closed: the session could not be re-checked", exc_info=True)
                fresh = None
            if fresh is None:
                logger.info("websocket closed: the session of user %s ended", self.scope["user"].pk)
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "{}")
        except json.JSONDecodeError:
            await self.send_status("error", "message is not JSON")
            return
        if not isinstance(message, dict):
            await self.send_status("error", "message must be a JSON object")
            return
        if isinstance(message.get("subscribe"), str):
            await self.subscribe(message["subscribe"])
        elif isinstance(message.get("unsubscribe"), str):
            name = message["unsubscribe"]
            if name in self.subscribed:
                self.subscribed.discard(name)
                await self.channel_layer.group_discard(group_for(name), self.channel_name)
        else:
            await self.send_status("error", "expected {'subscribe': topic} or {'unsubscribe': topic}")

    async def subscribe(self, name: str) -> None:
        topic = topics.lookup(name)
        try:
            group = group_for(name)
        except ValueError:
            topic = None
        if topic is None:
            await self.send_status("error", f"unknown topic {name}")
            return
        user = self.scope["user"]
        if not await database_sync_to_async(topic.authorize)(user, name):
            logger.info("websocket subscription to %s denied for user %s", name, user.pk)
            metrics.WS_SUBSCRIPTIONS.labels(outcome="denied").inc()
            await self.send_status("error", f"not allowed to follow {name}")
            return
        if len(self.subscribed) >= MAX_TOPICS:
            await self.send_status("error", "too many topics")
            return
        await self.channel_layer.group_add(group, self.channel_name)
        self.subscribed.add(name)
        metrics.WS_SUBSCRIPTIONS.labels(outcome="granted").inc()
        await self.push(name, {"snapshot": True})

    async def topic_event(self, event: dict[str, Any]) -> None:
        name = event.get("topic", "")
        if name not in self.subscribed:
            return
        await self.push(name, event.get("payload") or {})

    async def push(self, name: str, payload: dict[str, Any]) -> None:
        topic = topics.lookup(name)
        if topic is None:
            return
        html = await database_sync_to_async(self._render)(topic, name, payload)
        if html is None:
            await self.send_status("error", f"no longer allowed to follow {name}")
            return
        await self.send(text_data=html)
        metrics.WS_MESSAGES.inc()

    def _current_user(self) -> Any:
        """The connection's user, re-read with its session at most every USER_RECHECK_SECONDS."""
        now = time.monotonic()
        if now - self.user_checked_at >= USER_RECHECK_SECONDS:
            fresh = session_user(self.scope)
            self.scope["user"] = fresh if fresh is not None else AnonymousUser()
            self.user_checked_at = now
        return self.scope["user"]

    def _render(self, topic: topics.Topic, name: str, payload: dict[str, Any]) -> str | None:
        user = self._current_user()
        if not topic.authorize(user, name):
            return None
        return topic.render(user, name, payload)

    async def send_status(self, level: str, text: str) -> None:
        html = f'<div id="ws-status" hx-swap-oob="true" class="ws-status {level}" role="status">{escape(text)}</div>'
        await self.send(text_data=html)
