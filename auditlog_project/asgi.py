"""ASGI entry point of the demo host project."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auditlog_project.settings")
application = get_asgi_application()
