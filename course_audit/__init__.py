"""course_audit: record every change to a course and serve Canvas's Course Audit log API."""

__version__ = "0.1.0"
