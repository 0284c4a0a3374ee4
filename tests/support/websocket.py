"""The live endpoint in-process: a persona's session cookie and a ``WebsocketCommunicator`` connected with it."""

from __future__ import annotations

from typing import Any

from channels.testing import WebsocketCommunicator

from tests.support.clients import logged_in

ORIGIN = (b"origin", b"http://127.0.0.1")


def session_cookie(persona: Any) -> bytes:
    client = logged_in(persona)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(path: str, cookie: bytes | None = None) -> tuple[WebsocketCommunicator, bool, object]:
    from iccapp.asgi import application

    headers = [ORIGIN] + ([(b"cookie", cookie)] if cookie else [])
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code
