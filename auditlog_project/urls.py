"""URLs of the demo host project."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("course_audit.urls")),
    path("", RedirectView.as_view(pattern_name="course_audit:home", permanent=False)),
]
