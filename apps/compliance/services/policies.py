"""Writes on compliance policies and their bindings.

Policies are global: creating, changing, enabling or deleting one needs ``configure`` at the global scope. Built-in
policies (their checks live in :mod:`apps.compliance.checks`) are only enabled, disabled and bound; custom ones are
CEL, compiled on every save (a compile error is a DomainError naming the field, e.g. ``validations[0].expression``,
with the line and column the CEL library reports). A binding needs ``configure`` at its own scope (and, when it
moves, at the new one too). Every write is audited (``compliance.policy.*``, ``compliance.binding.*``), refreshes
the admission webhook's snapshot and re-scans every workload after commit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.audit.services import audit_record
from apps.clusters.models import Cluster
from apps.compliance import cel
from apps.compliance.cache import policies_changed
from apps.compliance.checks import Severity, checks_for_policy
from apps.compliance.models import BUILTIN_POLICIES, Binding, Mode, Policy, PolicyKind
from apps.core.access import GLOBAL, Action, Scope, ScopeKind, can_at
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.scopes import scope_from

KEY = re.compile(r"^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$")
MAX_MATCH_ITEMS = 50
MAX_PARAMS_BYTES = 16 * 1024
MAX_DESCRIPTION = 4000
POLICY_FIELDS = ("name", "description", "severity", "validations", "variables", "match")
BINDING_FIELDS = ("check_id", "mode", "params", "enabled", "warn_in_maintenance")
SCOPE_FIELDS = ("scope_kind", "scope_cluster", "scope_namespace", "scope_application")


def _check(by: Any, action: str, scope: Scope, what: str) -> None:
    if by is not None and not can_at(by, action, scope):
        raise ForbiddenError(f"your role does not allow {what} here")


def _actor(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


def _changed() -> None:
    """In the write's transaction: admission's snapshot follows and every workload is re-evaluated after commit."""
    from apps.compliance.tasks import scan

    policies_changed()
    transaction.on_commit(lambda: scan.apply_async(queue="analysis"))


# --- policies -----------------------------------------------------------------------------------------------------


def check_ids(policy: Policy) -> list[str]:
    """The ids of a policy's checks: the built-in ones, or one per CEL validation (``<key>.validations[i]``)."""
    if policy.kind == PolicyKind.BUILTIN:
        return [c.id for c in checks_for_policy(policy.key)]
    return [f"{policy.key}.validations[{i}]" for i in range(len(policy.validations or []))]


def clean_match(match: Any) -> dict[str, Any]:
    """Match rules: ``kinds`` (names or ``*``), ``namespaces`` (names or globs), ``labels`` (all must be equal)."""
    if match is None:
        return {}
    if not isinstance(match, Mapping):
        raise DomainError("match is an object with kinds, namespaces and labels", field="match")
    unknown = sorted(set(match) - {"kinds", "namespaces", "labels"})
    if unknown:
        raise DomainError(f"unknown key(s): {', '.join(unknown)}", field="match")
    cleaned: dict[str, Any] = {}
    for key in ("kinds", "namespaces"):
        items = match.get(key) or []
        if (
            not isinstance(items, list)
            or len(items) > MAX_MATCH_ITEMS
            or not all(isinstance(i, str) and 0 < len(i) <= 253 for i in items)
        ):
            raise DomainError(f"a list of at most {MAX_MATCH_ITEMS} names", field=f"match.{key}")
        if items:
            cleaned[key] = items
    labels = match.get("labels") or {}
    if (
        not isinstance(labels, Mapping)
        or len(labels) > MAX_MATCH_ITEMS
        or not all(isinstance(k, str) and k and isinstance(v, str) and len(k) <= 317 for k, v in labels.items())
    ):
        raise DomainError("labels map label names to values", field="match.labels")
    if labels:
        cleaned["labels"] = dict(labels)
    return cleaned


def clean_cel(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The CEL fields checked and compiled (raises :class:`apps.compliance.cel.CelCompileError` naming the field)."""
    severity = values.get("severity") or Severity.MEDIUM
    if severity not in Severity.__members__.values():
        raise DomainError(f"severity is one of {', '.join(Severity)}", field="severity")
    validations = values.get("validations")
    variables: Any = values.get("variables") if values.get("variables") is not None else []
    cel.compile_policy(validations or [], variables=variables, name=key, severity=Severity(severity))
    return {
        "severity": str(severity),
        "validations": list(validations or []),
        "variables": list(variables),
        "match": clean_match(values.get("match")),
    }


def _clean_text(values: Mapping[str, Any], policy: Policy | None) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "name" in values or policy is None:
        name = values.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise DomainError("a name of 1 to 200 characters", field="name")
        cleaned["name"] = name.strip()
    if "description" in values:
        description = values.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise DomainError(f"at most {MAX_DESCRIPTION} characters", field="description")
        cleaned["description"] = description
    return cleaned


def snapshot(policy: Policy) -> dict[str, Any]:
    return {
        "key": policy.key,
        "name": policy.name,
        "kind": policy.kind,
        "severity": policy.severity,
        "validations": policy.validations,
        "variables": policy.variables,
        "match": policy.match,
        "enabled": policy.enabled,
    }


def policy_create(
    *,
    key: str,
    name: str,
    validations: Any,
    description: str = "",
    severity: str = Severity.MEDIUM,
    variables: Any = None,
    match: Any = None,
    enabled: bool = True,
    by: Any = None,
) -> Policy:
    """A custom CEL policy (compiled first: nothing is stored when an expression does not compile)."""
    _check(by, Action.CONFIGURE, GLOBAL, "creating a compliance policy")
    if not isinstance(key, str) or not KEY.match(key):
        raise DomainError("a key of lower-case letters, digits and dashes (at most 100)", field="key")
    if key in {k for k, _, _ in BUILTIN_POLICIES}:
        raise ConflictError(f"{key!r} is a built-in policy", field="key")
    values = {"name": name, "description": description, "severity": severity, "validations": validations}
    values |= {"variables": variables, "match": match}
    cleaned = _clean_text(values, None) | clean_cel(values, key)
    policy = Policy(key=key, kind=PolicyKind.CEL, enabled=bool(enabled), created_by=_actor(by), **cleaned)
    try:
        with transaction.atomic():
            policy.save()
            changes = {k: [None, v] for k, v in snapshot(policy).items()}
            audit_record(action="compliance.policy.create", target=policy, changes=changes)
            _changed()
    except IntegrityError:
        raise ConflictError(f"a policy {key!r} already exists", field="key") from None
    return policy


def policy_update(*, policy: Policy, by: Any = None, **values: Any) -> Policy:
    """Change a custom policy's name, description, severity, validations, variables or match rules; recompiled and
    versioned. Refused when it would drop a check a binding names."""
    _check(by, Action.CONFIGURE, GLOBAL, "changing a compliance policy")
    unknown = sorted(set(values) - set(POLICY_FIELDS))
    if unknown:
        raise DomainError(f"a policy's {unknown[0]} cannot be changed", field=unknown[0])
    if policy.kind == PolicyKind.BUILTIN:
        raise ConflictError(
            "a built-in policy's checks cannot be edited: enable, disable or bind it", field="kind", code="builtin"
        )
    with transaction.atomic():
        locked = Policy.objects.select_for_update().get(pk=policy.pk)
        before = snapshot(locked)
        merged = {k: values[k] if k in values else getattr(locked, k) for k in POLICY_FIELDS}
        cleaned = _clean_text(values, locked) | clean_cel(merged, locked.key)
        remaining = {f"{locked.key}.validations[{i}]" for i in range(len(cleaned["validations"]))}
        orphan = locked.bindings.exclude(check_id="").exclude(check_id__in=remaining).first()
        if orphan is not None:
            raise ConflictError(
                f"binding {orphan.pk} names {orphan.check_id}, which this change removes", field="validations"
            )
        for key, value in cleaned.items():
            setattr(locked, key, value)
        locked.version = F("version") + 1
        locked.save()
        locked.refresh_from_db()
        after = snapshot(locked)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit_record(
            action="compliance.policy.update", target=locked, changes=changes, metadata={"version": locked.version}
        )
        _changed()
    return locked


def policy_set_enabled(*, policy: Policy, enabled: bool, by: Any = None, reason: str = "") -> Policy:
    """Enable or disable a policy (built-in or custom): its bindings apply only while it is enabled."""
    _check(by, Action.CONFIGURE, GLOBAL, "enabling or disabling a compliance policy")
    with transaction.atomic():
        locked = Policy.objects.select_for_update().get(pk=policy.pk)
        if locked.enabled == bool(enabled):
            return locked
        locked.enabled = bool(enabled)
        locked.save(update_fields=["enabled", "updated_at"])
        audit_record(
            action=f"compliance.policy.{'enable' if enabled else 'disable'}",
            target=locked,
            changes={"enabled": [not enabled, bool(enabled)]},
            message=str(reason or "")[:500],
        )
        _changed()
    return locked


def policy_delete(*, policy: Policy, confirm: str, by: Any = None) -> None:
    """Delete a custom policy with its bindings and exceptions; ``confirm`` repeats its key. Built-ins stay."""
    _check(by, Action.CONFIGURE, GLOBAL, "deleting a compliance policy")
    if policy.kind == PolicyKind.BUILTIN:
        raise ConflictError("a built-in policy cannot be deleted (disable it instead)", field="kind", code="builtin")
    if confirm != policy.key:
        raise DomainError(f"type the policy's key ({policy.key}) to confirm", field="confirm")
    with transaction.atomic():
        bindings = policy.bindings.count()
        audit_record(
            action="compliance.policy.delete",
            target=policy,
            changes={k: [v, None] for k, v in snapshot(policy).items()},
            metadata={"bindings": bindings, "exceptions": policy.exceptions.count()},
        )
        policy.delete()
        _changed()


# --- bindings -----------------------------------------------------------------------------------------------------


def _clean_params(policy: Policy, check_id: str, params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise DomainError("params is an object", field="params")
    try:
        size = len(json.dumps(params))
    except (TypeError, ValueError):
        raise DomainError("params must be JSON", field="params") from None
    if size > MAX_PARAMS_BYTES:
        raise DomainError(f"params is larger than {MAX_PARAMS_BYTES} bytes", field="params")
    if policy.kind != PolicyKind.BUILTIN:
        return dict(params)  # a CEL policy reads them as ``params``
    checks = {c.id: c for c in checks_for_policy(policy.key) if not check_id or c.id == check_id}
    for name, given in params.items():
        check = checks.get(name)
        if check is None:
            raise DomainError(f"{name!r} is not a check this binding runs", field=f"params.{name}")
        if not isinstance(given, Mapping):
            raise DomainError("the parameters of a check are an object", field=f"params.{name}")
        try:
            check.resolve_parameters(given)
        except (TypeError, ValueError) as exc:
            raise DomainError(str(exc), field=f"params.{name}") from None
    return dict(params)


def clean_binding(policy: Policy, values: Mapping[str, Any]) -> dict[str, Any]:
    """A binding's values checked (scope, mode, check, parameters), naming the field at fault."""
    if not isinstance(policy, Policy):
        raise DomainError("a binding names a policy", field="policy")
    scope = scope_from(values)
    mode = values.get("mode") or Mode.AUDIT
    if mode not in Mode.values:
        raise DomainError("mode is audit, warn or enforce", field="mode")
    check_id = values.get("check_id") or ""
    if not isinstance(check_id, str) or (check_id and check_id not in check_ids(policy)):
        raise DomainError(f"{check_id!r} is not a check of {policy.key}", field="check_id")
    return {
        "scope_kind": scope.kind,
        "scope_cluster": scope.cluster,
        "scope_namespace": scope.namespace,
        "scope_application": scope.application,
        "mode": mode,
        "check_id": check_id,
        "params": _clean_params(policy, check_id, values.get("params")),
        "enabled": bool(values.get("enabled", True)),
        "warn_in_maintenance": bool(values.get("warn_in_maintenance", False)),
    }


def _known_cluster(scope: Scope) -> None:
    """After the rights check (so nobody learns which clusters exist elsewhere): the named cluster exists."""
    if scope.kind == ScopeKind.GLOBAL:
        return
    if not scope.cluster.isdigit() or not Cluster.objects.filter(pk=int(scope.cluster)).exists():
        raise DomainError(f"no cluster {scope.cluster}", field="scope_cluster")


def binding_snapshot(binding: Binding) -> dict[str, Any]:
    return {
        "policy": binding.policy.key,
        "check_id": binding.check_id,
        "scope": binding.scope().label(),
        "mode": binding.mode,
        "params": binding.params,
        "enabled": binding.enabled,
        "warn_in_maintenance": binding.warn_in_maintenance,
    }


def _audit_scope(binding: Binding) -> dict[str, str]:
    scope = binding.scope()
    return {k: v for k, v in (("cluster", scope.cluster), ("namespace", scope.namespace)) if v}


def binding_create(*, policy: Policy, by: Any = None, **values: Any) -> Binding:
    """Apply a policy (or one check of it) at a scope in a mode, with parameters."""
    unknown = sorted(set(values) - {*BINDING_FIELDS, *SCOPE_FIELDS})
    if unknown:
        raise DomainError(f"unknown field {unknown[0]}", field=unknown[0])
    scope = scope_from(values)
    _check(by, Action.CONFIGURE, scope, "binding a compliance policy")
    cleaned = clean_binding(policy, values)
    _known_cluster(scope)
    with transaction.atomic():
        binding = Binding.objects.create(policy=policy, created_by=_actor(by), **cleaned)
        audit_record(
            action="compliance.binding.create",
            target=binding,
            scope=_audit_scope(binding),
            changes={k: [None, v] for k, v in binding_snapshot(binding).items()},
        )
        _changed()
    return binding


def binding_update(*, binding: Binding, by: Any = None, **values: Any) -> Binding:
    """Change a binding's mode, check, parameters, enabled flag or scope (configure rights at both scopes)."""
    unknown = sorted(set(values) - {*BINDING_FIELDS, *SCOPE_FIELDS})
    if unknown:
        raise DomainError(f"unknown field {unknown[0]}", field=unknown[0])
    _check(by, Action.CONFIGURE, binding.scope(), "changing a compliance binding")
    with transaction.atomic():
        locked = Binding.objects.select_for_update(of=("self",)).select_related("policy").get(pk=binding.pk)
        before = binding_snapshot(locked)
        merged = {k: values[k] if k in values else getattr(locked, k) for k in (*BINDING_FIELDS, *SCOPE_FIELDS)}
        if any(k in values for k in SCOPE_FIELDS):
            merged.update({k: values.get(k, "") for k in SCOPE_FIELDS})  # a new scope is given whole
        cleaned = clean_binding(locked.policy, merged)
        moved = Scope(*(cleaned[k] for k in SCOPE_FIELDS))
        if moved != locked.scope():
            _check(by, Action.CONFIGURE, moved, "moving a compliance binding")
            _known_cluster(moved)
        for key, value in cleaned.items():
            setattr(locked, key, value)
        locked.save()
        after = binding_snapshot(locked)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit_record(action="compliance.binding.update", target=locked, scope=_audit_scope(locked), changes=changes)
        _changed()
    return locked


def binding_delete(*, binding: Binding, by: Any = None) -> None:
    """Remove a binding: its checks stop applying at that scope (results follow at the re-scan)."""
    _check(by, Action.CONFIGURE, binding.scope(), "removing a compliance binding")
    with transaction.atomic():
        audit_record(
            action="compliance.binding.delete",
            target=binding,
            scope=_audit_scope(binding),
            changes={k: [v, None] for k, v in binding_snapshot(binding).items()},
        )
        binding.delete()
        _changed()
