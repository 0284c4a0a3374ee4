"""``manage.py audit_verify [--since ISO] [--until ISO] [--checkpoint FILE]``: recompute the audit chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from apps.audit.verification import check_checkpoint, record_verify_result, verify_chain


def _when(name: str, value: str | None) -> Any:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"--{name}: {value!r} is not an ISO 8601 date-time with a time zone")
    return parsed


class Command(BaseCommand):
    help = "Verify the audit hash chain; exits non-zero naming the first broken sequence number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z")
        parser.add_argument("--until", help="ISO 8601 date-time")
        parser.add_argument("--checkpoint", type=Path, help="also check a signed checkpoint file")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = _when("since", options["since"]), _when("until", options["until"])
        if since and until and since > until:
            raise CommandError("--since is after --until")
        result = verify_chain(since=since, until=until)
        record_verify_result(result)
        if options["checkpoint"]:
            ok, message = check_checkpoint(options["checkpoint"])
            if not ok:
                raise CommandError(f"checkpoint {options['checkpoint']}: {message}")
            self.stdout.write(message)
        if not result.ok:
            raise CommandError(
                f"audit chain broken at seq {result.first_bad_seq}: {result.reason} "
                f"({result.checked} events verified before it)"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain valid: {result.checked} events verified"))
