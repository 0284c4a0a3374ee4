"""The audit trail's domain events about its signed checkpoints: ``audit.checkpoint_failed`` when writing one
fails (the directory is missing, full or read-only; the database cannot be read), announced once per failing
streak, and the resolving ``audit.checkpoint_written`` on the next checkpoint written. One condition for the
trail (key ``audit.checkpoint_failed``); the streak is remembered in the cache beside the last verification.
(``audit.chain_broken`` / ``audit.chain_verified`` follow the verification: :mod:`apps.audit.verification`.)"""

from __future__ import annotations

from pathlib import Path

from django.core.cache import cache

from apps.core.domain_events import DomainEvent, Severity, emit

CHECKPOINT_FAILING_KEY = "icc:audit:checkpoint-failing"
CHECKPOINT_KEY = "audit.checkpoint_failed"


def checkpoint_failed(directory: Path, error: BaseException) -> None:
    """Announce the first failure of a streak (later failures of the same streak are the same condition)."""
    if not cache.add(CHECKPOINT_FAILING_KEY, str(error)[:500], timeout=None):
        return
    emit(
        DomainEvent(
            kind="audit.checkpoint_failed",
            severity=Severity.ERROR,
            subject="audit trail",
            text=(
                f"Writing the signed audit checkpoint to {directory} failed: {type(error).__name__}: {error}. "
                "Until one is written, a rewrite of the trail since the last checkpoint cannot be proven."
            )[:1000],
            link="/audit/",
            dedup_key=CHECKPOINT_KEY,
        )
    )


def checkpoint_written(path: Path) -> None:
    """Resolve a failing streak (nothing to say when the previous checkpoint was written too)."""
    if not cache.delete(CHECKPOINT_FAILING_KEY):
        return
    emit(
        DomainEvent(
            kind="audit.checkpoint_written",
            severity=Severity.INFO,
            subject="audit trail",
            text=f"The signed audit checkpoint is written again ({path.name}).",
            link="/audit/",
            dedup_key=CHECKPOINT_KEY,
            resolves=True,
        )
    )
