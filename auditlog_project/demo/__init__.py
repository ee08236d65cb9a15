"""The demo's own Django app: Northwind State University and ``manage.py seed_demo``.

Installed by the demo project's settings only (``auditlog_project.settings``): nothing here
ships in the course_audit wheel, so a host site never gets the demo's command or its users.

- ``catalogue``: the university's accounts, courses, people and the words they use;
- ``planner``: plans a year of each course's history up front;
- ``seeder``: writes the plan through ``course_audit.services`` in time order;
- ``synthetic``: synthetic event rows for load, shared with the benchmark (``bench/``).
"""
