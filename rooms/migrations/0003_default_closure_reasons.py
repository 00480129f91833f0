from django.db import migrations

REASONS = [
    "Resuelto",
    "Información entregada",
    "Remitido a otro canal",
    "Cliente no responde",
    "Spam o abuso",
]


def add_defaults(apps, schema_editor):
    ClosureReason = apps.get_model("rooms", "ClosureReason")
    for position, title in enumerate(REASONS):
        ClosureReason.objects.get_or_create(title=title, defaults={"position": position})
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name="agents")


class Migration(migrations.Migration):
    dependencies = [("rooms", "0002_agents"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
