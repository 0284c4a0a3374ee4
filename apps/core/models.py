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
