"""The names of course_audit's enums in an OpenAPI schema (drf-spectacular's
``ENUM_NAME_OVERRIDES``), in a module that imports nothing of Django's, so that a host's
settings can take them::

    from course_audit.api.enum_names import ENUM_NAME_OVERRIDES

    SPECTACULAR_SETTINGS = {"ENUM_NAME_OVERRIDES": {**ENUM_NAME_OVERRIDES}}

A schema of the whole site (drf-spectacular's own views, and its check in
``manage.py check --deploy``) otherwise meets one choice set under two names and warns
(``drf_spectacular.W001``); the app's own schema uses the same names.
"""

from __future__ import annotations

ENUM_NAME_OVERRIDES: dict[str, str] = {
    "CourseWorkflowStateEnum": "course_audit.models.Course.WorkflowState",
    "AccountWorkflowStateEnum": "course_audit.models.Account.WorkflowState",
    # course[event] of an update, in its JSON and its form body alike.
    "CourseEventEnum": "course_audit.api.serializers.COURSE_EVENT_ACTIONS",
}
