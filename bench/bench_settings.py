"""The demo project's settings with the benchmark's URLconf (``bench.bench_urls``): the app's
URLs, the baseline pagers and a trivial JSON view. Used in-process by ``suite.py`` and by
the gunicorn it starts; never by the app or the demo."""

from auditlog_project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
