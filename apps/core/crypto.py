"""Encryption at rest for anything ICC stores secretly (cluster credentials, notification channel secrets): Fernet
(AES-128-CBC + HMAC-SHA256) from ``cryptography``.

Keys come from ``ICC_ENCRYPTION_KEYS`` (or ``_FILE``), comma-separated, newest first: the first key encrypts,
every key decrypts, so a rotation lists the new key first, re-encrypts and then drops the old one.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from apps.core.errors import DomainError


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ICC_ENCRYPTION_KEYS))


def encrypt_text(text: str) -> bytes:
    return fernet().encrypt(text.encode())


def decrypt_text(token: bytes | memoryview, *, field: str = "secret") -> str:
    """The stored text, or a DomainError naming ``field`` when no configured key decrypts it."""
    try:
        return fernet().decrypt(bytes(token)).decode()
    except InvalidToken:
        raise DomainError(
            f"the stored {field} cannot be decrypted with ICC_ENCRYPTION_KEYS (was a key removed too early?)",
            field=field,
            code="secret_unreadable",
        ) from None


def rotate(token: bytes | memoryview) -> bytes:
    """Re-encrypt with the newest key (raises InvalidToken when no key decrypts it)."""
    return fernet().rotate(bytes(token))
