"""The site's own pages. They change courses through course_audit's services."""

from __future__ import annotations

from course_audit.models import Course
from course_audit.services import course_update
from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from catalog import tasks


class RenameForm(forms.Form):
    name = forms.CharField(max_length=255)


def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/dashboard.html")


def rename_course(request: HttpRequest, pk: int) -> HttpResponse:
    course = get_object_or_404(Course, pk=pk)
    form = RenameForm(request.POST or None, initial={"name": course.name})
    if request.method == "POST" and form.is_valid():
        course_update(course=course, name=form.cleaned_data["name"])
        return redirect("dashboard")
    return render(request, "catalog/rename.html", {"course": course, "form": form})


def conclude_later(request: HttpRequest, pk: int) -> HttpResponse:
    course = get_object_or_404(Course, pk=pk)
    if request.method != "POST":
        return HttpResponse(status=405)
    tasks.delay("conclude_course", course_id=course.pk)
    return HttpResponse("queued", status=202)
