"""Untrusted YAML, parsed with limits: a size cap, no anchors or aliases, bounded nesting.

A few hundred bytes of aliases expand to gigabytes (the "billion laughs"); anchors and aliases are refused
while composing, before any object is constructed. Errors are DomainErrors naming the input's field.
"""

from __future__ import annotations

from typing import Any

import yaml

from apps.core.errors import DomainError


def load_bounded(
    text: Any, *, field: str, what: str, max_bytes: int = 256 * 1024, max_depth: int = 32, hint: str = ""
) -> Any:
    """The YAML document in ``text`` as data; ``what`` names the input in messages ("a kubeconfig")."""

    class Loader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise DomainError(
                    f"YAML anchors and aliases are not accepted in {what} (line {mark.line + 1}, column "
                    f"{mark.column + 1}){hint}",
                    field=field,
                )
            self._depth += 1
            try:
                if self._depth > max_depth:
                    raise DomainError(f"nested deeper than {max_depth} levels: not {what}", field=field)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    if not isinstance(text, str):
        raise DomainError(f"{what} is text", field=field)
    if len(text) > max_bytes or len(text.encode("utf-8", errors="replace")) > max_bytes:
        raise DomainError(f"larger than {max_bytes // 1024} KiB; is this {what}?", field=field)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or "unparseable"
        raise DomainError(f"not valid YAML{at}: {problem}", field=field) from None
    except RecursionError:
        raise DomainError(f"nested too deeply: not {what}", field=field) from None
