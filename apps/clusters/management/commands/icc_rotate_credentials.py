"""Re-encrypt every cluster's stored credentials with the newest key of ICC_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.clusters.services import rotate_credentials
from apps.core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Re-encrypt stored cluster credentials with the first key of ICC_ENCRYPTION_KEYS. Rotation: list the new "
        "key first (keeping the old one), run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = rotate_credentials()
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"re-encrypted the credentials of {count} cluster(s) with the newest key")
