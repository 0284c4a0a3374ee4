"""Keep secrets out of the audit trail: redact by field name, recursively."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|^key$|_key$|credential|kubeconfig|"
    r"authorization|cookie|session|certificate[_-]?key|bearer|signature|salt|hash$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def is_secret(name: str, extra: Iterable[str] = ()) -> bool:
    return _secret_name(name) or name in extra


def redact(value: Any, extra: Iterable[str] = ()) -> Any:
    """A copy of ``value`` where every mapping entry whose key looks secret is replaced by ``[redacted]``."""
    extra = tuple(extra)
    if isinstance(value, Mapping):
        return {
            str(key): (REDACTED if is_secret(str(key), extra) else redact(item, extra)) for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, extra) for item in value]
    return value


def diff(before: Mapping[str, Any], after: Mapping[str, Any], *, secret_fields: Iterable[str] = ()) -> dict[str, Any]:
    """Field-level changes ``{field: {"before": x, "after": y}}``; secret fields show only that they changed."""
    secret_fields = tuple(secret_fields)
    changes: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if is_secret(name, secret_fields):
            changes[name] = {"before": REDACTED if old not in (None, "") else None, "after": REDACTED}
        else:
            changes[name] = {"before": _jsonable(old), "after": _jsonable(new)}
    return changes


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return redact({str(k): _jsonable(v) for k, v in value.items()})
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)
