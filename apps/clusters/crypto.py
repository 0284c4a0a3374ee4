"""Encryption of stored cluster credentials: JSON under :mod:`apps.core.crypto`'s Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from ``ICC_ENCRYPTION_KEYS`` (or ``_FILE``), comma-separated, newest first: the first key encrypts,
every key decrypts, so a rotation lists the new key first, re-encrypts (``manage.py icc_rotate_credentials``)
and then drops the old one.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.fernet import InvalidToken

from apps.core.crypto import fernet, rotate
from apps.core.errors import DomainError

__all__ = ["decrypt", "encrypt", "fernet", "rotate"]


def encrypt(data: dict[str, Any]) -> bytes:
    return fernet().encrypt(orjson.dumps(data))


def decrypt(token: bytes | memoryview) -> dict[str, Any]:
    try:
        data: dict[str, Any] = orjson.loads(fernet().decrypt(bytes(token)))
    except InvalidToken:
        raise DomainError(
            "stored credentials cannot be decrypted with ICC_ENCRYPTION_KEYS (was a key removed too early?)",
            field="credentials",
            code="credentials_unreadable",
        ) from None
    return data
