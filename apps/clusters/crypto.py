"""Encryption of stored cluster credentials: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

Keys come from ``ICC_ENCRYPTION_KEYS`` (or ``_FILE``), comma-separated, newest first: the first key encrypts,
every key decrypts, so a rotation lists the new key first, re-encrypts (``manage.py icc_rotate_credentials``)
and then drops the old one.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from apps.core.errors import DomainError


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ICC_ENCRYPTION_KEYS))


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


def rotate(token: bytes | memoryview) -> bytes:
    """Re-encrypt with the newest key (raises InvalidToken when no key decrypts it)."""
    return fernet().rotate(bytes(token))
