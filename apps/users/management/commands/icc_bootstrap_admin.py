"""Create the first platform administrator when there is none, with a generated password.

The password is written to ``<ICC_DATA_DIR>/initial_admin_password`` (mode 0600), never printed or
logged; the command prints where to read it. Running it again when an administrator exists does
nothing.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.users.models import User
from apps.users.services import user_create


class Command(BaseCommand):
    help = "Create an initial superuser if none exists; its generated password goes to a 0600 file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("ICC_ADMIN_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("ICC_ADMIN_EMAIL", ""))

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists; nothing to do.")
            return
        password = secrets.token_urlsafe(18)
        user_create(username=options["username"], password=password, email=options["email"], is_superuser=True)
        path = settings.ICC_DATA_DIR / "initial_admin_password"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password + "\n")
        self.stdout.write(
            self.style.SUCCESS(f"Created administrator {options['username']!r}.")
            + f"\nIts password is in {path} (read it with: cat {path}); change it after logging in."
        )
