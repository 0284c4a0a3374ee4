"""The built-in policies exist from the start (their checks live in apps.compliance.checks); nothing is bound."""

from django.db import migrations

BUILTIN = [
    ("pss-baseline", "Pod Security Standards: baseline", "Prevents known privilege escalations (upstream baseline)."),
    ("pss-restricted", "Pod Security Standards: restricted", "Baseline plus current pod hardening best practice."),
    ("best-practice", "Best practices", "Requests and limits, probes, pinned images, registries, labels and more."),
]


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    Policy = apps.get_model("compliance", "Policy")
    for key, name, description in BUILTIN:
        Policy.objects.get_or_create(key=key, defaults={"name": name, "description": description, "kind": "builtin"})


def remove(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("compliance", "Policy").objects.filter(key__in=[key for key, _, _ in BUILTIN]).delete()


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
