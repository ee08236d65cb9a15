"""The demo university's catalogue: Northwind State University's colleges, departments and
courses, its people and their roles, its term calendar and the words its courses use."""

from __future__ import annotations

import dataclasses

from django.contrib.auth import get_user_model

ROOT_SIS_ID = "NSU"
ROOT_NAME = "Northwind State University"
PASSWORD = "demo"

# Colleges, their departments (indented) and each department's catalog (indented again),
# each line starting with its SIS id or course number.
UNIVERSITY = """
CAS College of Arts and Sciences
    BIOL Biology
        101 Principles of Biology
        150 Human Anatomy and Physiology I
        210 Genetics
        240 Microbiology
        310 Cell Biology
        355 Ecology
        420 Molecular Biology
    CHEM Chemistry
        101 General Chemistry I
        102 General Chemistry II
        221 Organic Chemistry I
        222 Organic Chemistry II
        340 Physical Chemistry
        410 Biochemistry
    HIST History
        101 World Civilizations to 1500
        102 World Civilizations since 1500
        210 United States History to 1877
        245 History of the Pacific Northwest
        330 Modern Europe
        412 Historiography
    MATH Mathematics
        110 College Algebra
        151 Calculus I
        152 Calculus II
        231 Linear Algebra
        240 Discrete Mathematics
        345 Probability and Statistics
        421 Real Analysis
COE College of Engineering
    CSCI Computer Science
        101 Introduction to Programming
        162 Data Structures
        220 Computer Organization
        301 Algorithms
        330 Database Systems
        361 Operating Systems
        415 Machine Learning
    MECH Mechanical Engineering
        201 Statics
        202 Dynamics
        310 Thermodynamics
        335 Fluid Mechanics
        440 Mechanical Design
    ELEC Electrical Engineering
        201 Circuit Analysis I
        250 Digital Logic
        320 Signals and Systems
        360 Electronics
        430 Power Systems
SOB School of Business
    ACCT Accounting
        201 Financial Accounting
        202 Managerial Accounting
        310 Intermediate Accounting
        340 Cost Accounting
        420 Auditing
    FINC Finance
        300 Corporate Finance
        330 Investments
        410 International Finance
    MKTG Marketing
        300 Principles of Marketing
        320 Consumer Behavior
        350 Digital Marketing
        410 Marketing Research
COED College of Education
    TEDU Teacher Education
        200 Foundations of Education
        310 Classroom Management
        340 Literacy Across the Curriculum
        450 Student Teaching Seminar
    EDLD Educational Leadership
        510 School Leadership
        520 Education Law and Policy
        540 Curriculum Design
        600 Research Methods in Education
"""


@dataclasses.dataclass(frozen=True)
class Department:
    sis_id: str
    name: str
    college: str
    catalog: tuple[tuple[int, str], ...]


def parse_university(text: str) -> tuple[dict[str, str], dict[str, Department]]:
    """``UNIVERSITY`` as ``({college sis id: name}, {department sis id: Department})``."""
    colleges: dict[str, str] = {}
    catalogs: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    college = department = None
    for line in text.strip().splitlines():
        key, name = line.strip().split(" ", 1)
        depth = (len(line) - len(line.lstrip())) // 4
        if depth == 0:
            college = key
            colleges[key] = name
        elif depth == 1:
            assert college is not None
            department = (key, name, college)
            catalogs[department] = []
        else:
            assert department is not None
            catalogs[department].append((int(key), name))
    departments = {
        key: Department(key, name, college_id, tuple(catalog))
        for (key, name, college_id), catalog in catalogs.items()
    }
    return colleges, departments


COLLEGES, DEPARTMENTS = parse_university(UNIVERSITY)

DEPT_ADMIN_DEPARTMENT = "CSCI"


@dataclasses.dataclass(frozen=True)
class DemoUser:
    login: str
    first_name: str
    last_name: str
    role: str | None = None  # "admin" or "teacher"
    account: str | None = None  # sis_account_id of the membership's account
    can_log_in: bool = False


ADMIN_ROLE, TEACHER_ROLE = "Account admin", "Teacher"
USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "", "", can_log_in=True),
    DemoUser("registrar", "Margaret", "Okafor", "admin", ROOT_SIS_ID, can_log_in=True),
    DemoUser("dept_admin", "Daniel", "Kim", "admin", DEPT_ADMIN_DEPARTMENT, can_log_in=True),
    DemoUser("teacher", "Priya", "Raman", "teacher", ROOT_SIS_ID, can_log_in=True),
    DemoUser("hbrooks", "Hannah", "Brooks", "admin", ROOT_SIS_ID),  # instructional design
    DemoUser("twhitfield", "Thomas", "Whitfield", "teacher", "BIOL"),
    DemoUser("epetrova", "Elena", "Petrova", "teacher", "CHEM"),
    DemoUser("mjohnson", "Marcus", "Johnson", "teacher", "CSCI"),
    DemoUser("kwatanabe", "Kenji", "Watanabe", "teacher", "MECH"),
    DemoUser("lbennett", "Laura", "Bennett", "teacher", "HIST"),
    DemoUser("sosei", "Samuel", "Osei", "teacher", "ACCT"),
    DemoUser("gliu", "Grace", "Liu", "teacher", "TEDU"),
)
# Who teaches (and so edits, in the web UI) the courses of each department.
TEACHER_OF_DEPT = {
    "BIOL": "twhitfield",
    "CHEM": "epetrova",
    "HIST": "lbennett",
    "MATH": "teacher",
    "CSCI": "mjohnson",
    "MECH": "kwatanabe",
    "ELEC": "kwatanabe",
    "ACCT": "sosei",
    "FINC": "sosei",
    "MKTG": "sosei",
    "TEDU": "gliu",
    "EDLD": "gliu",
}
API_ACTORS = ("hbrooks", "registrar", "mjohnson", "twhitfield")

# (code, label, start (month, day), end (month, day), weight)
TERM_CALENDAR = (
    ("SP", "Spring", (1, 13), (5, 9), 1.0),
    ("SU", "Summer", (5, 27), (8, 8), 0.35),
    ("FA", "Fall", (8, 25), (12, 12), 1.0),
)
NAME_SUFFIXES = (" (Online)", " (Hybrid)", " - Honors", " (Evening)")
ADHOC_COURSES = (
    ("Faculty Development: Teaching with Canvas", None),
    ("New Student Orientation", None),
    ("Academic Integrity Tutorial", None),
    ("Graduate Teaching Assistant Training", "CAS"),
    ("Engineering Lab Safety Training", "COE"),
    ("Writing Center Workshops", "CAS"),
    ("Business Career Readiness", "SOB"),
    ("Student Teaching Placement Hub", "COED"),
    ("Undergraduate Research Symposium", None),
    ("Library Research Skills", "CAS"),
)
DESCRIPTIONS = (
    "Syllabus, schedule and office hours are posted under Modules. Read the syllabus first.",
    "Weekly readings, lab handouts and the grading policy are linked from the home page.",
    "This section meets online; lectures are recorded and posted within 24 hours.",
    "Textbook: see the bookstore listing. Homework is submitted here, never by email.",
)
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
)
API_CLIENTS = ("canvasapi/3.3.0", "python-requests/2.32.3", "NSU-Timetable-Sync/2.4")


def demo_login(name: str) -> str:
    """The login of a demo user in the active user model (an email if that is the login)."""
    if get_user_model().USERNAME_FIELD == "email":
        return f"{name}@example.edu"
    return name
