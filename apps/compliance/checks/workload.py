"""Where a workload keeps its pod, and how a fix addresses it: JSON pointers (RFC 6901) and patches (RFC 6902)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

# JSON Patch (RFC 6902) operations, as plain dicts so they serialise unchanged.
JsonPatch = list[dict[str, Any]]

# Each supported kind and the path from the object's root to its PodTemplateSpec (or, for a Pod, the Pod itself).
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
JOB_KINDS = frozenset({"Job", "CronJob"})
# The container lists in the order upstream's visitContainers walks them.
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_CONTAINER_NOUNS = {
    "initContainers": "initContainer",
    "containers": "container",
    "ephemeralContainers": "ephemeralContainer",
}


class UnsupportedKind(ValueError):
    """The object is not a kind that carries a pod spec."""


def pointer_escape(token: str) -> str:
    """One reference token of a JSON pointer: ``~`` becomes ``~0`` and ``/`` becomes ``~1`` (in that order)."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer(path: Sequence[str | int]) -> str:
    return _pointer(tuple(path))


@lru_cache(maxsize=4096)
def _pointer(path: tuple[str | int, ...]) -> str:
    # A scan builds the same few hundred pointers for thousands of workloads.
    return "".join("/" + pointer_escape(str(token)) for token in path)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: manifests omit, or null, what they do not set."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class ContainerRef:
    """One container of the pod, with the list it sits in and its path from the object's root."""

    list_name: str
    index: int
    spec: dict[str, Any]
    path: tuple[str | int, ...]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", f"#{self.index}"))

    @property
    def label(self) -> str:
        """``container "app"``, ``initContainer "migrate"``: how messages name it."""
        return f'{_CONTAINER_NOUNS[self.list_name]} "{self.name}"'

    @property
    def security_context(self) -> dict[str, Any]:
        return as_dict(self.spec.get("securityContext"))


@dataclass(frozen=True)
class Workload:
    """A read-only view of an object that runs pods: its kind, its pod spec and pod metadata, and their paths (the
    pod spec and metadata are looked up once per view: every check of a scan reads them)."""

    obj: dict[str, Any]
    kind: str
    template_path: tuple[str, ...]

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Workload:
        if not isinstance(obj, dict):
            raise UnsupportedKind("the object is not a mapping")
        kind = obj.get("kind")
        if not isinstance(kind, str) or kind not in POD_TEMPLATE_PATHS:
            raise UnsupportedKind(f"kind {kind!r} has no pod spec")
        return cls(obj=obj, kind=kind, template_path=POD_TEMPLATE_PATHS[kind])

    def _get(self, path: Sequence[str]) -> dict[str, Any]:
        node: Any = self.obj
        for token in path:
            node = as_dict(node).get(token)
        return as_dict(node)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        return as_dict(self.obj.get("metadata"))

    @property
    def namespace(self) -> str | None:
        namespace = self.metadata.get("namespace")
        return namespace if isinstance(namespace, str) and namespace else None

    @property
    def pod_spec_path(self) -> tuple[str, ...]:
        return (*self.template_path, "spec")

    @property
    def pod_meta_path(self) -> tuple[str, ...]:
        return (*self.template_path, "metadata")

    @cached_property
    def pod_spec(self) -> dict[str, Any]:
        return self._get(self.pod_spec_path)

    @cached_property
    def pod_meta(self) -> dict[str, Any]:
        return self._get(self.pod_meta_path)

    @cached_property
    def pod_security_context(self) -> dict[str, Any]:
        return as_dict(self.pod_spec.get("securityContext"))

    @property
    def is_windows(self) -> bool:
        return as_dict(self.pod_spec.get("os")).get("name") == "windows"

    @property
    def in_user_namespace(self) -> bool:
        """``hostUsers: false``: upstream relaxes runAsNonRoot, runAsUser and baseline procMount for these pods."""
        return self.pod_spec.get("hostUsers") is False

    def containers(self, lists: Sequence[str] = CONTAINER_LISTS) -> Iterator[ContainerRef]:
        return iter(self._containers_of(tuple(lists)))

    @cached_property
    def _container_refs(self) -> dict[tuple[str, ...], tuple[ContainerRef, ...]]:
        return {}

    def _containers_of(self, lists: tuple[str, ...]) -> tuple[ContainerRef, ...]:
        """The containers of ``lists``, built once per view (most checks walk the same lists)."""
        refs = self._container_refs.get(lists)
        if refs is None:
            spec = self.pod_spec
            refs = tuple(
                ContainerRef(list_name, index, as_dict(item), (*self.pod_spec_path, list_name, index))
                for list_name in lists
                if isinstance(spec.get(list_name), list)
                for index, item in enumerate(spec[list_name])
            )
            self._container_refs[lists] = refs
        return refs

    def patch(self) -> PatchBuilder:
        return PatchBuilder(self.obj)


class PatchBuilder:
    """Builds a JSON Patch of ``add`` operations that is valid against the object as given.

    Each operation is applied to a private copy as it is made, so a later operation sees the parents an earlier one
    created (two fields of one missing ``securityContext`` become one ``add`` of the object, then one of a member).
    ``add`` on an existing object member replaces its value (RFC 6902 4.1); arrays are always replaced whole through
    their parent member, never addressed by index, so no operation inserts by accident.
    """

    def __init__(self, obj: dict[str, Any]) -> None:
        self._original = obj
        self._doc: dict[str, Any] | None = None  # made on the first operation: passing checks copy nothing
        self._copied: set[int] = set()  # ids of the containers already copied into _doc
        self.ops: JsonPatch = []

    def set(self, path: Sequence[str | int], value: Any) -> PatchBuilder:
        """Make ``path`` hold ``value``, creating missing objects on the way with a single ``add``."""
        if not path:
            raise ValueError("a fix never replaces the whole object")
        if self._doc is None:
            self._doc = dict(self._original)
            self._copied.add(id(self._doc))
        node: Any = self._doc
        for depth, token in enumerate(path[:-1]):
            child = node[int(token)] if isinstance(node, list) else node.get(token)
            if not isinstance(child, (dict, list)):
                nested: Any = copy.deepcopy(value)
                for inner in reversed(path[depth + 1 :]):
                    nested = {str(inner): nested}
                return self._add(node, path[: depth + 1], nested)
            node = self._own(node, token, child)
        return self._add(node, path, copy.deepcopy(value))

    def _own(self, parent: Any, token: str | int, child: Any) -> Any:
        """``child`` as a private copy held by ``parent`` (the copy already made, or a new shallow one): only the
        containers on a written path are copied, never the whole object (a deep copy per fix dominated scans)."""
        if id(child) in self._copied:
            return child
        mine = dict(child) if isinstance(child, dict) else list(child)
        self._copied.add(id(mine))
        if isinstance(parent, list):
            parent[int(token)] = mine
        else:
            parent[token] = mine
        return mine

    def _add(self, parent: Any, path: Sequence[str | int], value: Any) -> PatchBuilder:
        last = path[-1]
        if isinstance(parent, list):
            # Only reached for a container or volume that exists, so the index replaces nothing: keep it honest.
            raise ValueError(f"refusing to insert into an array at {pointer(path)}")
        # One private copy serves the document and the operation: a later operation that writes below it copies
        # the containers on its path first (_own), so the operation's value is never changed afterwards.
        parent[str(last)] = value
        self.ops.append({"op": "add", "path": pointer(path), "value": value})
        return self

    def build(self) -> JsonPatch:
        return list(self.ops)


def describe(refs: Sequence[ContainerRef]) -> str:
    """``container "app" and initContainer "init"``: the containers at fault, in upstream's visiting order."""
    labels = [ref.label for ref in refs]
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def quote_all(values: Sequence[str]) -> str:
    return ", ".join(f'"{value}"' for value in values)
