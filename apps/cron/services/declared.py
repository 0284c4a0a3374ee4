"""Applications declare their own jobs: a workload PUTs the whole set, authenticated by its ServiceAccount token.

``jobs_declare(*, identity, jobs)`` makes the application's declared jobs exactly the list given, by name and
idempotently: new names are created, changed ones updated (their version goes up), missing ones removed, equal
ones left alone. Every job of the list is checked first and any error refuses the whole declaration (400 naming
``jobs[<i>].<field>``), so nothing half-applied is stored. Declared jobs belong to the application: they always
carry its coordinates, operators may suspend them but not edit them, and a name an operator already uses for one
of the application's own jobs is a conflict. Each change is audited with the ServiceAccount as the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.core.errors import ConflictError, DomainError
from apps.cron.models import HTTP_FIELDS, TIMING_FIELDS, Job
from apps.cron.services.jobs import job_create, job_delete, job_update
from apps.cron.services.validation import clean_job

MAX_DECLARED = 100
# What an application may set on its own jobs (never its application, coordinates or suspension).
DECLARABLE = {
    "name",
    "description",
    *TIMING_FIELDS,
    "target_kind",
    *HTTP_FIELDS,
    "http_secret_headers",
    "job_template",
}


def _prefixed(index: int, exc: DomainError) -> DomainError:
    field = f"jobs[{index}].{exc.field}" if exc.field else f"jobs[{index}]"
    return type(exc)(f"jobs[{index}]: {exc.message}", field=field, code=exc.code)


def _values(index: int, item: Any, application: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise DomainError(f"jobs[{index}] is not an object", field=f"jobs[{index}]")
    unknown = sorted(set(item) - DECLARABLE)
    if unknown:
        raise DomainError(f"jobs[{index}]: {unknown[0]!r} cannot be declared", field=f"jobs[{index}].{unknown[0]}")
    values = dict(item)
    values["application"] = application
    return values


def _check_all(items: list[Any], application: Any) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        values = _values(index, item, application)
        try:
            clean_job(values, None)
        except DomainError as exc:
            raise _prefixed(index, exc) from None
        if values["name"] in seen:
            raise DomainError(
                f"jobs[{index}]: the name {values['name']!r} is declared twice", field=f"jobs[{index}].name"
            )
        seen.add(values["name"])
        checked.append(values)
    return checked


def _differs(job: Job, values: Mapping[str, Any]) -> bool:
    """Would applying ``values`` change ``job``? (Secret headers always count as a change when given.)"""
    if "http_secret_headers" in values:
        return True
    cleaned = clean_job({k: v for k, v in values.items() if k != "application"}, job)
    return any(getattr(job, key) != value for key, value in cleaned.items())


def jobs_declare(*, identity: Any, jobs: Any) -> dict[str, list[str]]:
    """Make ``identity.application``'s declared jobs exactly ``jobs``; returns the names by what happened."""
    if not isinstance(jobs, list):
        raise DomainError("jobs is a list of job objects (an empty list removes every declared job)", field="jobs")
    if len(jobs) > MAX_DECLARED:
        raise DomainError(f"at most {MAX_DECLARED} jobs per application", field="jobs")
    application = identity.application
    actor = identity.actor()
    checked = _check_all(jobs, application)
    result: dict[str, list[str]] = {"created": [], "updated": [], "removed": [], "unchanged": []}
    with transaction.atomic():
        existing = {j.name: j for j in Job.objects.select_for_update().filter(application=application)}
        for index, values in enumerate(checked):
            job = existing.get(values["name"])
            if job is not None and not job.declared:
                raise ConflictError(
                    f"jobs[{index}]: {application} already has an operator's job named {job.name!r}",
                    field=f"jobs[{index}].name",
                )
            try:
                if job is None:
                    job_create(declared=True, actor=actor, **values)
                    result["created"].append(values["name"])
                elif _differs(job, values):
                    changes = {k: v for k, v in values.items() if k != "application"}
                    job_update(job=job, actor=actor, declared_source=True, **changes)
                    result["updated"].append(values["name"])
                else:
                    result["unchanged"].append(values["name"])
            except DomainError as exc:
                raise _prefixed(index, exc) from None
        declared_names = {v["name"] for v in checked}
        for name, job in sorted(existing.items()):
            if job.declared and name not in declared_names:
                job_delete(job=job, confirm=job.name, actor=actor)
                result["removed"].append(name)
    return result
