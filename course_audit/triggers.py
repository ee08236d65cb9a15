"""The database records (PostgreSQL): triggers on the course table write its events.

Every ``INSERT`` and ``UPDATE`` of ``course_audit_course``, whoever issues it (the ORM, a
data migration, ``loaddata``, ``psql``, another program), records the events that
``course_audit.diff`` describes, in the same statement: one statement-level trigger per
operation reads the statement's transition tables and writes every event with one
``INSERT ... SELECT``. The SQL rules below are the pure module's, written again in SQL;
``tests/test_triggers.py`` holds them to the Python ones, value for value.

Attribution comes from the transaction-local setting ``course_audit.context`` (JSON), which
the app sets before it writes (``recording.bind_context``). Without it the change came from
outside the app: the events have no user, source ``manual``, and keep the database role,
``application_name`` and client address instead.
"""

from __future__ import annotations

from typing import Any

from course_audit.diff import TRACKED_FIELDS

COURSE_TABLE = "course_audit_course"
EVENT_TABLE = "course_audit_courseevent"
CONTEXT_SETTING = "course_audit.context"
RECORDED_SETTING = "course_audit.recorded"
# The courses whose change a statement left unrecorded (a reset's old course), each to be
# matched by a ``reset_to`` event when the transaction commits.
UNRECORDED_TABLE = "course_audit_unrecorded_change"
UNRECORDED_CHECK = "course_audit_unrecorded_check"
INSERT_TRIGGER = "course_audit_course_record_insert"
UPDATE_TRIGGER = "course_audit_course_record_update"
TRIGGERS = (INSERT_TRIGGER, UPDATE_TRIGGER)
# Strings in event_data are cut to this many characters when no app context says
# otherwise (``COURSE_AUDIT_MAX_DIFF_STRING_LENGTH``'s default).
DEFAULT_MAX_STRING_LENGTH = 1000

_TEXT_FIELDS = ("name", "course_code", "sis_course_id", "public_description")
_TIME_FIELDS = ("start_at", "conclude_at")
_PLAIN_FIELDS = ("account_id", "is_public")


def _field_change(field: str, old: str, new: str) -> str:
    """``event_data``'s entry for one field: ``[before, after]`` as ``json_value`` prints
    them (strings cut to ``lim``), or NULL when, by Canvas's rules, it did not change.
    ``old`` and ``new`` name the rows (a NULL row for an INSERT's old one)."""
    before, after = f"{old}.{field}", f"{new}.{field}"
    if field in _TEXT_FIELDS:
        same = (
            f"(coalesce({before}, '') = '' AND coalesce({after}, '') = '')"
            f" OR {before} IS NOT DISTINCT FROM {after}"
        )
        shown = f"to_jsonb(left({before}, lim)), to_jsonb(left({after}, lim))"
    elif field in _TIME_FIELDS:
        # Dates compare as printed: to the second, in UTC.
        printed_before = f"course_audit_print_time({before})"
        printed_after = f"course_audit_print_time({after})"
        same = (
            f"{before} IS NOT DISTINCT FROM {after}"
            f" OR {printed_before} IS NOT DISTINCT FROM {printed_after}"
        )
        shown = f"to_jsonb(left({printed_before}, lim)), to_jsonb(left({printed_after}, lim))"
    else:
        assert field in _PLAIN_FIELDS, field
        same = f"{before} IS NOT DISTINCT FROM {after}"
        shown = f"to_jsonb({before}), to_jsonb({after})"
    return f"'{field}', CASE WHEN NOT ({same}) THEN jsonb_build_array({shown}) END"


def event_data_sql(old: str, new: str = "n") -> str:
    """The SQL expression of a change's ``event_data`` (the fields that changed), inlined
    in the triggers' statements and in ``course_audit_event_data``: no function call per
    row. ``jsonb_strip_nulls`` drops the unchanged fields (a NULL inside an array stays)."""
    entries = ",\n        ".join(_field_change(field, old, new) for field in TRACKED_FIELDS)
    return f"jsonb_strip_nulls(jsonb_build_object(\n        {entries}\n    ))"


# A backfill's events (a context with ``occurred_at``) keep when they were really recorded.
_RECORDED_AT_COLUMN = ", recorded_at"
_RECORDED_AT_VALUE = (
    ",\n    CASE WHEN context ->> 'occurred_at' IS NOT NULL THEN clock_timestamp() END"
)
_EVENT_COLUMNS = f"""uuid, created_at, course_id, account_id, event_type, event_source, event_data,
    related_course_id, user_id, user_name, request_id, sis_batch_id,
    db_role, db_application, db_client_addr{_RECORDED_AT_COLUMN}"""
# What every event of the statement shares (``e``: the event type and its position).
_ATTRIBUTION = f"""NULL, acting_user, coalesce(context ->> 'user_name', ''),
    (context ->> 'request_id')::uuid, (context ->> 'sis_batch_id')::bigint,
    coalesce(context ->> 'db_role', ''), coalesce(context ->> 'db_application', ''),
    (context ->> 'db_client_addr')::inet{_RECORDED_AT_VALUE}"""
# The events of an INSERT: ``created`` (the diff from nothing, and its source), then the
# lifecycle events from unpublished to the course's state.
_INSERT_ROWS = f"""SELECT gen_random_uuid(), at, n.id, n.account_id, e.event_type, source,
    CASE WHEN e.position = 1
        THEN {event_data_sql(f"(NULL::{COURSE_TABLE})")}
            || jsonb_build_object('created_source', source)
        ELSE '{{}}'::jsonb END,
    {_ATTRIBUTION}
FROM new_rows AS n
CROSS JOIN LATERAL unnest(
    ARRAY['created'] || course_audit_lifecycle('unpublished', n.workflow_state)
) WITH ORDINALITY AS e(event_type, position)
ORDER BY n.id, e.position"""
# The events of an UPDATE: ``updated`` when a tracked field changed, then the lifecycle.
_UPDATE_ROWS = f"""SELECT gen_random_uuid(), at, c.id, c.account_id, e.event_type, source,
    CASE WHEN e.event_type = 'updated' THEN c.data ELSE '{{}}'::jsonb END,
    {_ATTRIBUTION}
FROM (
    SELECT n.id, n.account_id, o.workflow_state AS old_state, n.workflow_state AS new_state,
           {event_data_sql("o")} AS data
    FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.id <> ALL (skipped)
) AS c
CROSS JOIN LATERAL unnest(
    CASE WHEN c.data = '{{}}'::jsonb THEN '{{}}'::text[] ELSE ARRAY['updated'] END
    || course_audit_lifecycle(c.old_state, c.new_state)
) WITH ORDINALITY AS e(event_type, position)
ORDER BY c.id, e.position"""
# The events of a statement that wrote one row (``types`` and ``data`` worked out in
# PL/pgSQL from the row's variables): a plan with no transition table, cheap to reuse.
_ONE_ROW = f"""SELECT gen_random_uuid(), at, nr.id, nr.account_id, e.event_type, source,
    CASE WHEN e.event_type IN ('created', 'updated') THEN data ELSE '{{}}'::jsonb END,
    {_ATTRIBUTION}
FROM unnest(types) WITH ORDINALITY AS e(event_type, position)
ORDER BY e.position"""
# Whether the statement wrote exactly one row: most writes (a save, a service) do.
_ONE_ROW_WRITTEN = "(SELECT count(*) FROM (SELECT FROM new_rows LIMIT 2) AS two) = 1"
_DECLARE = f"""    context jsonb := course_audit_context();
    lim integer := coalesce((context ->> 'max_length')::integer, {DEFAULT_MAX_STRING_LENGTH});
    at timestamptz := coalesce((context ->> 'occurred_at')::timestamptz, clock_timestamp());
    source text := coalesce(context ->> 'source', 'manual');
    -- The host's user key, whatever its type (an integer, a UUID): the column's own.
    acting_user {EVENT_TABLE}.user_id%TYPE := context ->> 'user_id';
    ids bigint[];
    nr {COURSE_TABLE};
    orow {COURSE_TABLE};
    data jsonb;
    types text[];"""


def _write(rows: str) -> str:
    """Insert the events ``rows`` selects; their ids are noted only when the app collects
    them (``RETURNING`` needs ``SELECT`` on the events, which another program's role may
    rightly lack)."""
    return f"""    IF coalesce((context ->> 'collect')::boolean, false) THEN
        WITH written AS (
            INSERT INTO {EVENT_TABLE} ({_EVENT_COLUMNS})
            {rows}
            RETURNING id
        )
        SELECT array_agg(id) INTO ids FROM written;
        PERFORM course_audit_note_recorded(ids);
    ELSE
        INSERT INTO {EVENT_TABLE} ({_EVENT_COLUMNS})
        {rows};
    END IF;"""


FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION course_audit_lifecycle(old_state text, new_state text)
RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF old_state IS NOT DISTINCT FROM new_state THEN
        RETURN '{{}}'::text[];
    ELSIF new_state = 'deleted' THEN
        RETURN ARRAY['deleted'];
    ELSIF old_state = 'deleted' THEN
        RETURN ARRAY['restored'] || course_audit_lifecycle('unpublished', new_state);
    ELSIF new_state = 'completed' THEN
        RETURN ARRAY['concluded'];
    ELSIF old_state = 'completed' THEN
        RETURN ARRAY['unconcluded'] || course_audit_lifecycle('available', new_state);
    ELSIF new_state = 'available' THEN
        RETURN ARRAY['published'];
    END IF;
    RETURN ARRAY['unpublished'];
END
$$;

CREATE OR REPLACE FUNCTION course_audit_print_time(value timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

CREATE OR REPLACE FUNCTION course_audit_event_data(
    o {COURSE_TABLE}, n {COURSE_TABLE}, lim integer
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT {event_data_sql("o")}
$$;

CREATE OR REPLACE FUNCTION course_audit_context()
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    raw text := current_setting('{CONTEXT_SETTING}', true);
BEGIN
    IF raw IS NOT NULL AND raw <> '' THEN
        RETURN raw::jsonb;
    END IF;
    RETURN jsonb_build_object(
        'source', 'manual',
        'db_role', current_user,
        'db_application', current_setting('application_name', true),
        'db_client_addr', host(inet_client_addr())
    );
END
$$;

CREATE OR REPLACE FUNCTION course_audit_note_recorded(ids bigint[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(ids) > 0 THEN
        PERFORM set_config(
            '{RECORDED_SETTING}',
            concat_ws(',', nullif(current_setting('{RECORDED_SETTING}', true), ''),
                      array_to_string(ids, ',')),
            true
        );
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION {INSERT_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
{_DECLARE}
BEGIN
    IF {_ONE_ROW_WRITTEN} THEN
        SELECT * INTO nr FROM new_rows;
        data := {event_data_sql(f"(NULL::{COURSE_TABLE})", "nr")}
            || jsonb_build_object('created_source', source);
        types := ARRAY['created'] || course_audit_lifecycle('unpublished', nr.workflow_state);
{_write(_ONE_ROW)}
    ELSE
{_write(_INSERT_ROWS)}
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {UPDATE_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
{_DECLARE}
    skipped bigint[] := ARRAY(SELECT jsonb_array_elements_text(
        coalesce(context -> 'skip_courses', '[]'::jsonb))::bigint);
BEGIN
    IF {_ONE_ROW_WRITTEN} THEN
        SELECT * INTO nr FROM new_rows;
        SELECT * INTO orow FROM old_rows;
        IF nr.id = ANY (skipped) THEN
            PERFORM course_audit_leave_unrecorded(ARRAY[nr.id]);
            RETURN NULL;
        END IF;
        data := {event_data_sql("orow", "nr")};
        types := CASE WHEN data = '{{}}'::jsonb THEN '{{}}'::text[] ELSE ARRAY['updated'] END
            || course_audit_lifecycle(orow.workflow_state, nr.workflow_state);
        IF cardinality(types) > 0 THEN
{_write(_ONE_ROW)}
        END IF;
    ELSE
        IF cardinality(skipped) > 0 THEN
            PERFORM course_audit_leave_unrecorded(
                ARRAY(SELECT id FROM new_rows WHERE id = ANY (skipped)));
        END IF;
{_write(_UPDATE_ROWS)}
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION course_audit_leave_unrecorded(courses bigint[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {UNRECORDED_TABLE} (course_id, events_after)
    SELECT course, (SELECT coalesce(max(id), 0) FROM {EVENT_TABLE}) FROM unnest(courses) AS course;
END
$$;

CREATE OR REPLACE FUNCTION {UNRECORDED_CHECK}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM {EVENT_TABLE}
        WHERE course_id = NEW.course_id AND event_type = 'reset_to' AND id > NEW.events_after
    ) THEN
        RAISE EXCEPTION 'course % was changed unrecorded, without a reset_to event',
                NEW.course_id
            USING ERRCODE = 'restrict_violation',
                  HINT = 'Only a reset (course_audit.services.course_reset) records its old '
                      || 'course''s change itself; any other change is recorded by the triggers.';
    END IF;
    DELETE FROM {UNRECORDED_TABLE}
    WHERE course_id = NEW.course_id AND events_after = NEW.events_after;
    RETURN NULL;
END
$$;
"""

TRIGGERS_SQL = f"""
CREATE TABLE IF NOT EXISTS {UNRECORDED_TABLE} (
    course_id bigint NOT NULL,
    events_after bigint NOT NULL
);
-- At COMMIT: a course left unrecorded must have got its reset_to event meanwhile.
CREATE CONSTRAINT TRIGGER {UNRECORDED_CHECK} AFTER INSERT ON {UNRECORDED_TABLE}
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION {UNRECORDED_CHECK}();
CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {COURSE_TABLE}
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {INSERT_TRIGGER}();
CREATE TRIGGER {UPDATE_TRIGGER} AFTER UPDATE ON {COURSE_TABLE}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {UPDATE_TRIGGER}();
"""

DROP_SQL = f"""
DROP TABLE IF EXISTS {UNRECORDED_TABLE};
DROP FUNCTION IF EXISTS {UNRECORDED_CHECK}();
DROP FUNCTION IF EXISTS course_audit_leave_unrecorded(bigint[]);
DROP TRIGGER IF EXISTS {INSERT_TRIGGER} ON {COURSE_TABLE};
DROP TRIGGER IF EXISTS {UPDATE_TRIGGER} ON {COURSE_TABLE};
DROP FUNCTION IF EXISTS {INSERT_TRIGGER}();
DROP FUNCTION IF EXISTS {UPDATE_TRIGGER}();
DROP FUNCTION IF EXISTS course_audit_note_recorded(bigint[]);
DROP FUNCTION IF EXISTS course_audit_context();
DROP FUNCTION IF EXISTS course_audit_event_data({COURSE_TABLE}, {COURSE_TABLE}, integer);
DROP FUNCTION IF EXISTS course_audit_print_time(timestamptz);
DROP FUNCTION IF EXISTS course_audit_lifecycle(text, text);
"""


def functions_sql(*, recorded_at: bool = True) -> str:
    """``FUNCTIONS_SQL``; without ``recorded_at``, the functions as they were before the
    events had that column (migrations 0006 and, going back, 0012)."""
    if recorded_at:
        return FUNCTIONS_SQL
    return FUNCTIONS_SQL.replace(_RECORDED_AT_COLUMN, "").replace(_RECORDED_AT_VALUE, "")


def install(cursor: Any, *, recorded_at: bool = True) -> None:
    """Create the functions and the triggers (the table must have no triggers of ours)."""
    cursor.execute(functions_sql(recorded_at=recorded_at))
    cursor.execute(TRIGGERS_SQL)


def remove(cursor: Any) -> None:
    cursor.execute(DROP_SQL)


def trigger_states(cursor: Any) -> dict[str, str]:
    """Our triggers on the course table and their ``tgenabled`` (``O`` is enabled; ``D``
    disabled; ``R``/``A`` replica or always): an absent trigger is not in the result."""
    cursor.execute(
        "SELECT tgname, tgenabled FROM pg_trigger"
        " WHERE tgrelid = %s::regclass AND tgname = ANY(%s)",
        [COURSE_TABLE, list(TRIGGERS)],
    )
    return {name: str(state) for name, state in cursor.fetchall()}
