from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from apps.audit.admin_mixins import AuditedModelAdmin
from apps.core.access import is_platform_superuser
from apps.core.errors import DomainError
from apps.users.models import User
from apps.users.services import PRIVILEGED_FIELDS, check_user_change


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    """Users in the admin, under the same rules as the API (:func:`apps.users.services.check_user_change`):
    only superusers touch privileges, passwords and superuser accounts; nobody locks themself or the last
    superuser out."""

    fieldsets = (*DjangoUserAdmin.fieldsets, ("ICC", {"fields": ("display_name",)}))  # type: ignore[misc]
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "last_login")
    audit_secret_fields = ("password", "password1", "password2")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and not is_platform_superuser(request.user):
            fields += tuple(name for name in PRIVILEGED_FIELDS if name != "password")
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not is_platform_superuser(request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            try:
                check_user_change(by=request.user, user=obj, changes={}, deleting=True)  # type: ignore[arg-type]
            except DomainError:
                return False
        return super().has_delete_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        original = User.objects.filter(pk=obj.pk).first() if obj is not None else None

        class GuardedForm(form_class):  # type: ignore[misc,valid-type]
            def clean(self) -> dict[str, Any]:
                data: dict[str, Any] = super().clean()
                if original is not None:
                    changes = {name: data.get(name) for name in self.changed_data}
                    try:
                        check_user_change(by=request.user, user=original, changes=changes)  # type: ignore[arg-type]
                    except DomainError as exc:
                        raise forms.ValidationError(exc.message, code=exc.code) from None
                return data

        return GuardedForm

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if not is_platform_superuser(request.user):
            raise PermissionDenied("only superusers change passwords here")
        return super().user_change_password(request, id, form_url)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            try:
                check_user_change(by=request.user, user=user, changes={}, deleting=True)  # type: ignore[arg-type]
            except DomainError as exc:
                raise PermissionDenied(f"{user.username}: {exc.message}") from None
        super().delete_queryset(request, queryset)
