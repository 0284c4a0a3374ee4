"""Base model shared by every ICC app."""

from __future__ import annotations

from django.db import models


class BaseModel(models.Model):
    """A row with a big-integer primary key and creation/update timestamps."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Lease(models.Model):
    """A named lease: whichever process holds it (and keeps renewing it) is the one that may act.

    Written only by :mod:`apps.core.leases`, with the database's clock. ``generation`` is the fencing token: it
    grows by one whenever a new holder takes the lease, so a write can check it still acts for the current holder.
    """

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    renewed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    generation = models.BigIntegerField(default=1)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} (generation {self.generation})"
