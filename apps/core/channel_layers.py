"""An in-memory channel layer that is safe to publish to from other threads.

The embedded default runs the Celery worker and scheduler as threads of the web process. Channels'
InMemoryChannelLayer keeps asyncio queues bound to the web server's event loop; putting into them
from another thread's loop would not wake the server. This layer remembers the loop its consumers
receive on and hands sends from any other loop over to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _home_loop: asyncio.AbstractEventLoop | None = None

    def _remember_loop(self) -> None:
        self._home_loop = asyncio.get_running_loop()

    async def receive(self, channel: str) -> Any:
        self._remember_loop()
        return await super().receive(channel)

    async def _on_home_loop(self, coro: Any) -> Any:
        home = self._home_loop
        if home is None or home.is_closed() or home is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(super().send(channel, message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(super().group_send(group, message))
