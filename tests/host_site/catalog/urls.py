from __future__ import annotations

from django.urls import path

from catalog import views

urlpatterns = [
    path("courses/<int:pk>/rename/", views.rename_course, name="catalog-rename"),
    path("courses/<int:pk>/conclude-later/", views.conclude_later, name="catalog-conclude-later"),
]
