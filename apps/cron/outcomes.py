"""What a worker holds while it runs a run (``Claim``) and what a target's call came to (``Outcome``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from apps.cron.models import Attempt, Job, Run


@dataclass
class Outcome:
    state: str
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


@dataclass
class Claim:
    run: Run
    job: Job
    token: uuid.UUID
    attempt: Attempt
