"""The site's own REST API (under /campus-api/v2/), on the site's REST_FRAMEWORK defaults."""

from __future__ import annotations

from course_audit.models import Course
from course_audit.services import course_publish
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class CourseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Course
        fields = ["id", "name", "workflow_state"]


class CourseList(generics.ListAPIView):
    queryset = Course.objects.order_by("pk")
    serializer_class = CourseSerializer


class PublishCourse(APIView):
    def post(self, request: Request, version: str, pk: int) -> Response:
        course = course_publish(course=generics.get_object_or_404(Course, pk=pk))
        return Response(CourseSerializer(course).data)
