"""The database records (PostgreSQL): triggers on the course table write its events.

Statement-level ``AFTER INSERT`` and ``AFTER UPDATE`` triggers on ``course_audit_course``
record every change, whoever writes it (see ``course_audit.triggers``). Events gain the
database role, application name and client address, which events of changes made
outside the app keep. On other databases only the columns are added: the app's recorder
goes on writing the events there.
"""

from django.db import migrations, models

from course_audit import triggers


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # The events have no ``recorded_at`` yet: migration 0012 adds it to the functions.
        triggers.install(schema_editor.connection.cursor(), recorded_at=False)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        triggers.remove(schema_editor.connection.cursor())


class Migration(migrations.Migration):
    dependencies = [
        ("course_audit", "0005_course_guard"),
    ]

    operations = [
        migrations.AddField(
            model_name="courseevent",
            name="db_application",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                max_length=64,
                verbose_name="database application",
            ),
        ),
        migrations.AddField(
            model_name="courseevent",
            name="db_client_addr",
            field=models.GenericIPAddressField(
                blank=True, null=True, verbose_name="database client"
            ),
        ),
        migrations.AddField(
            model_name="courseevent",
            name="db_role",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=63, verbose_name="database role"
            ),
        ),
        migrations.RunPython(install, remove, elidable=False),
    ]
