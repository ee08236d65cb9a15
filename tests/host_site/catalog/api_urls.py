from __future__ import annotations

from django.urls import path

from catalog import api

urlpatterns = [
    path("courses/", api.CourseList.as_view(), name="campus-api-courses"),
    path("courses/<int:pk>/publish/", api.PublishCourse.as_view(), name="campus-api-publish"),
]
