"""URLs of Campus Registrar: course_audit lives under /registrar/."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from catalog import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("staff/", admin.site.urls),
    path("people/login/", auth_views.LoginView.as_view(), name="people-login"),
    path("catalog/", include("catalog.urls")),
    path("campus-api/<str:version>/", include("catalog.api_urls")),
    path("registrar/", include("course_audit.urls")),
]
