"""The vocabulary of the built-in checks: what a check is, what it answers, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from apps.compliance.checks.workload import JsonPatch, Workload


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a result status, not a password
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


POLICY_BASELINE = "pss-baseline"
POLICY_RESTRICTED = "pss-restricted"
POLICY_BEST_PRACTICE = "best-practice"
POLICIES = (POLICY_BASELINE, POLICY_RESTRICTED, POLICY_BEST_PRACTICE)


@dataclass(frozen=True)
class Parameter:
    """One tunable of a check; ``kind`` is a JSON Schema type ("array" holds strings, "integer" an int)."""

    name: str
    kind: str
    default: Any
    description: str

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.kind, "default": self.default, "description": self.description}
        if self.kind == "array":
            schema["items"] = {"type": "string"}
        return schema

    def coerce(self, value: Any) -> Any:
        """The value checked against the declared type, so a bad binding fails loudly as an ``error`` result."""
        if self.kind == "array":
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(f"parameter {self.name!r} must be a list of strings")
            items = list(value)
            if not all(isinstance(item, str) for item in items):
                raise TypeError(f"parameter {self.name!r} must be a list of strings")
            return items
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"parameter {self.name!r} must be an integer")
            return value
        if self.kind == "string" and not isinstance(value, str):
            raise TypeError(f"parameter {self.name!r} must be a string")
        return value


@dataclass(frozen=True)
class Outcome:
    """What a check function answers; the engine turns it into a :class:`Result` naming the check."""

    status: Status
    message: str
    fix: JsonPatch | None = None


def passed(message: str = "") -> Outcome:
    return Outcome(Status.PASS, message)


def failed(message: str, fix: JsonPatch | None = None) -> Outcome:
    return Outcome(Status.FAIL, message, fix or None)


def skipped(message: str) -> Outcome:
    return Outcome(Status.SKIP, message)


CheckFunction = Callable[[Workload, Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class Check:
    """A built-in check: its identity and documentation, and the function that judges one workload."""

    id: str
    title: str
    severity: Severity
    category: str
    policy: str
    description: str
    remediation: str
    function: CheckFunction = field(repr=False, compare=False)
    parameters: tuple[Parameter, ...] = ()
    # Upstream pod-security-admission check id, and the ids of checks this one replaces in its policy.
    upstream_id: str = ""
    overrides: tuple[str, ...] = ()

    def parameters_schema(self) -> dict[str, Any]:
        """A JSON Schema object for the check's parameters (what a binding may set)."""
        return {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.parameters},
            "additionalProperties": False,
        }

    def resolve_parameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; an unknown name or a value of the wrong type raises."""
        given = dict(given or {})
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {self.id}: {', '.join(unknown)}")
        return {name: p.coerce(given[name]) if name in given else p.default for name, p in known.items()}


@dataclass(frozen=True)
class Result:
    """One check's verdict on one object: ``fix`` is a JSON Patch against the object as it was given."""

    check_id: str
    policy: str
    severity: Severity
    status: Status
    message: str
    fix: JsonPatch | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "policy": self.policy,
            "severity": str(self.severity),
            "status": str(self.status),
            "message": self.message,
            "fix": self.fix,
        }


_REGISTRY: dict[str, Check] = {}


def check_register(check: Check) -> Check:
    """Add a built-in check; ids are unique and registration order is the order results come back in."""
    if check.id in _REGISTRY:
        raise ValueError(f"check {check.id!r} is already registered")
    if check.policy not in POLICIES:
        raise ValueError(f"check {check.id!r} names an unknown policy {check.policy!r}")
    _REGISTRY[check.id] = check
    return check


def check_get(check_id: str) -> Check:
    try:
        return _REGISTRY[check_id]
    except KeyError:
        raise KeyError(f"no built-in check {check_id!r}") from None


def checks_all() -> list[Check]:
    """Every check, policy by policy (baseline, restricted, best practice), in registration order within one."""
    return sorted(_REGISTRY.values(), key=lambda check: POLICIES.index(check.policy))


def checks_for_policy(policy: str) -> list[Check]:
    """The checks a policy runs: ``pss-restricted`` is baseline plus restricted, minus what restricted overrides."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    if policy == POLICY_RESTRICTED:
        chosen = [c for c in checks_all() if c.policy in (POLICY_BASELINE, POLICY_RESTRICTED)]
        replaced = {upstream for c in chosen for upstream in c.overrides}
        return [c for c in chosen if c.upstream_id not in replaced]
    return [c for c in _REGISTRY.values() if c.policy == policy]


def builtin_check(
    *,
    id: str,
    title: str,
    severity: Severity,
    category: str,
    policy: str,
    description: str,
    remediation: str,
    parameters: tuple[Parameter, ...] = (),
    upstream_id: str = "",
    overrides: tuple[str, ...] = (),
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as a built-in check."""

    def register(function: CheckFunction) -> CheckFunction:
        check_register(
            Check(
                id=id,
                title=title,
                severity=severity,
                category=category,
                policy=policy,
                description=description,
                remediation=remediation,
                function=function,
                parameters=parameters,
                upstream_id=upstream_id,
                overrides=overrides,
            )
        )
        return function

    return register
