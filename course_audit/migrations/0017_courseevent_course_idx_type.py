"""The course index carries each event's type (``INCLUDE (event_type)``), so a course's
chart counts its newest events by day and type from the index alone (an index-only scan,
``selectors.newest_day_counts``) instead of reading those rows from the table.

Dropped and made again on the partitioned parent, so every month partition, existing and
future, gets it (``CREATE INDEX`` on the parent cannot be ``CONCURRENTLY``: it holds off
writes to the events while it is built). On SQLite, which has no covering indexes, the
index is the same as before.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("course_audit", "0016_checkpoint_leaves_uncompressed"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="courseevent",
            name="course_audit_evt_course_idx",
        ),
        migrations.AddIndex(
            model_name="courseevent",
            index=models.Index(
                fields=["course", "-created_at", "-id"],
                include=("event_type",),
                name="course_audit_evt_course_idx",
            ),
        ),
    ]
