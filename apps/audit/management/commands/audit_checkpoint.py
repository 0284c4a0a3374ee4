"""``manage.py audit_checkpoint [--dir DIR]``: write a signed checkpoint of the chain head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.audit.verification import write_checkpoint


class Command(BaseCommand):
    help = "Write an HMAC-signed checkpoint (last seq, head hash, count) to AUDIT_CHECKPOINT_DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", type=Path, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"checkpoint written: {write_checkpoint(options['dir'])}")
