"""Live pod logs: ``/ws/pods/<id>/logs/?container=&tail_lines=`` follows one container's log.

Who may: a signed-in user with ``act`` on the pod (logs may hold data), checked with
:func:`apps.core.access.can` when connecting and again every ``RECHECK_SECONDS``, with the session (logout,
expiry, password change, deactivation end the follow: :func:`apps.core.sessions.session_user`). Refusals close the
connection before accepting it: 4401 not signed in, 4404 no such pod (or hidden), 4403 may see but not
act, 4400 bad ``container``/``tail_lines``. Each follow is audited once.

The Kubernetes log stream (``follow=true``) is read in a thread; lines are sent in JSON batches
``{"type": "lines", "lines": [...]}``; ``{"type": "end", "reason": ...}`` precedes the server closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import transaction

from apps.audit.models import ActorKind
from apps.audit.services import Actor, audit_record
from apps.clusters import gateway as gateways
from apps.clusters.models import Pod
from apps.core import context
from apps.core.access import Action, can, restrict
from apps.core.sessions import session_user

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
RECHECK_SECONDS = 5.0  # a revoked right or an ended session stops the stream within this time
MAX_LINE = 16384  # characters kept of one log line
MAX_BATCH = 500  # lines per websocket message
QUEUE_LINES = 10000  # lines buffered for a slow browser before the oldest are dropped


class PodLogConsumer(AsyncWebsocketConsumer):
    pod: Pod
    container: str
    tail_lines: int
    _stop: threading.Event
    _reader: threading.Thread | None = None
    _forwarder: asyncio.Task[None] | None = None
    _response: Any = None

    async def connect(self) -> None:
        self._stop = threading.Event()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        refusal = await database_sync_to_async(self._authorize)(user)
        if refusal:
            await self.close(code=refusal)
            return
        await self.accept()
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_LINES)
        loop = asyncio.get_running_loop()
        self._reader = threading.Thread(target=self._read, args=(loop, queue), name="pod-log-follow", daemon=True)
        self._reader.start()
        self._forwarder = asyncio.create_task(self._forward(queue, user))

    def _authorize(self, user: Any) -> int:
        """0 when allowed (and the follow audited), else the close code."""
        pod_id = self.scope["url_route"]["kwargs"]["pod_id"]
        pod = (
            restrict(user, Action.READ, Pod.objects.select_related("cluster", "application")).filter(pk=pod_id).first()
        )
        if pod is None:
            return CLOSE_NOT_FOUND
        if not can(user, Action.ACT, pod):
            logger.info("pod log follow of pod %s denied for user %s", pod.pk, user.pk)
            return CLOSE_FORBIDDEN
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        names = [str(c.get("name")) for c in pod.containers]
        container = (query.get("container") or [""])[-1]
        if container and container not in names:
            return CLOSE_BAD_REQUEST
        try:
            tail_lines = int((query.get("tail_lines") or ["100"])[-1])
        except ValueError:
            return CLOSE_BAD_REQUEST
        if not 0 <= tail_lines <= 10000:
            return CLOSE_BAD_REQUEST
        self.pod, self.container, self.tail_lines = pod, container or (names[0] if names else ""), tail_lines
        context.start(source="portal", user=user, user_id=user.pk, username=user.get_username())
        with transaction.atomic():
            audit_record(
                action="clusters.pod.logs.follow",
                target=pod,
                actor=Actor(ActorKind.USER, str(user.pk), user.get_username()),
                metadata={"container": self.container, "tail_lines": tail_lines},
                scope={
                    "cluster": str(pod.cluster_id),
                    "namespace": pod.namespace,
                    "application": pod.application.name if pod.application else "",
                },
            )
        return 0

    def _read(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        """The reading thread: Kubernetes' log stream, line by line, into the queue; None at the end."""

        def put(item: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(_offer, queue, item)

        try:
            self._response = gateways.for_cluster(self.pod.cluster).pod_log(
                self.pod.namespace, self.pod.name, container=self.container, tail_lines=self.tail_lines, follow=True
            )
            if self._stop.is_set():  # the browser left while the stream was being opened
                return
            buffer = b""
            for chunk in self._response.stream(8192, decode_content=True):
                if self._stop.is_set():
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    put(line.decode(errors="replace")[:MAX_LINE])
            if buffer and not self._stop.is_set():
                put(buffer.decode(errors="replace")[:MAX_LINE])
        except gateways.KubeError as exc:
            if not self._stop.is_set():
                put("\0error:" + exc.message)
        except Exception as exc:  # the connection was cut under us (on disconnect) or broke
            if not self._stop.is_set():
                logger.info("pod log follow of %s ended: %s", self.pod, exc.__class__.__name__)
                put("\0error:the log stream broke")
        finally:
            self._close_response()
            put(None)

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # unblocks a read waiting for the next line
            with contextlib.suppress(Exception):
                response.release_conn()

    async def _forward(self, queue: asyncio.Queue[str | None], user: Any) -> None:
        checked = time.monotonic()
        ended = "the log stream ended"
        while True:
            try:
                due = max(0.05, RECHECK_SECONDS - (time.monotonic() - checked))  # quiet logs are re-checked too
                first = await asyncio.wait_for(queue.get(), timeout=due)
            except TimeoutError:
                first = ""
                batch: list[str] = []
            else:
                batch = [first] if first is not None else []
                while first is not None and len(batch) < MAX_BATCH and not queue.empty():
                    item = queue.get_nowait()
                    if item is None:
                        first = None
                        break
                    batch.append(item)
            errors = [line for line in batch if line.startswith("\0error:")]
            batch = [line for line in batch if not line.startswith("\0error:")]
            if batch:
                await self.send(text_data=json.dumps({"type": "lines", "lines": batch}))
            if errors:
                ended = errors[0].removeprefix("\0error:")
            if first is None:
                break
            if time.monotonic() - checked >= RECHECK_SECONDS:
                checked = time.monotonic()
                if not await database_sync_to_async(self._still_allowed)(user):
                    ended = "no longer allowed to read this pod's logs (signed out, or the right was revoked)"
                    break
        self._stop.set()
        await self.send(text_data=json.dumps({"type": "end", "reason": ended}))
        await self.close(code=1000)

    def _still_allowed(self, user: Any) -> bool:
        """The session still signs the (active) user in, and they may still act on the pod."""
        fresh = session_user(self.scope)
        return fresh is not None and fresh.pk == user.pk and can(fresh, Action.ACT, self.pod)

    async def disconnect(self, code: int) -> None:
        self._stop.set()
        if self._forwarder is not None and not self._forwarder.done():
            self._forwarder.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self._close_response)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Nothing to say to the server: closing the socket stops the follow."""


def _offer(queue: asyncio.Queue[str | None], item: str | None) -> None:
    """Add to the queue; when the browser lags far behind, drop the oldest lines (never the end marker)."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
