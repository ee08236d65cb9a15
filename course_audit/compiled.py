"""Queries compiled once and run again with other values: what a hot path needs when
Django would spend longer building a query's SQL than the database spends running it.

``CompiledLookup`` is a query for at most one model instance (its ``select_related``
objects and annotations included), built by a function of the values it looks up (and of
the database alias, as ``using=``). The function is called once per database with
stand-in values, the SQL is compiled and kept
with where each stand-in went; each lookup then only binds its own values, runs the SQL
and builds the instance as the ORM would. Only values that reach the SQL unchanged
(strings and integers, e.g. a key or a hash) may be stand-ins: anything else (a time, a
list) belongs in the function or in SQL (``Now()``). A parameter the function adds of its
own (``workflow_state='active'``) is kept as a constant, once a second compilation with
other stand-ins shows it to be one.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]

from course_audit import prepared


@dataclasses.dataclass(frozen=True)
class _Compiled:
    sql: str
    # For each parameter of ``sql``: the index of the looked-up value it takes, or None
    # for a constant of the query's own (its value at the same index of ``constants``).
    slots: tuple[int | None, ...]
    constants: tuple[Any, ...]
    select: Any
    klass_info: Any
    annotation_col_map: Any
    # For each column that has them, its index and what turns it into a Python value.
    converters: tuple[tuple[int, Any, tuple[Any, ...]], ...]
    # The model's attribute names of its own columns, and where they sit in a row.
    names: tuple[str, ...]
    start: int
    end: int
    # What builds the ``select_related`` objects from a row (stateless between rows).
    populators: tuple[Any, ...]


class CompiledLookup:
    """At most one instance of ``build(*values)``'s model, its SQL compiled once per
    database (``build`` must always give the same shape of query)."""

    def __init__(self, build: Callable[..., QuerySet[Any]], stand_ins: Sequence[str | int]):
        if len(set(stand_ins)) != len(stand_ins):
            raise ValueError("each stand-in value must be unique")
        self.build = build
        self.stand_ins = tuple(stand_ins)
        self._compiled: dict[tuple[str, str, str], _Compiled | None] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str) -> _Compiled | None:
        connection = connections[using]
        key = (using, connection.vendor, str(connection.settings_dict["NAME"]))
        if key in self._compiled:
            return self._compiled[key]
        queryset = self.build(*self.stand_ins, using=using).using(using)[:1]
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        # Compiled again with other stand-ins: a parameter that changes with them must be
        # one of them, unchanged; one that does not is a constant of the query's own.
        others = tuple(_other(value) for value in self.stand_ins)
        again = self.build(*others, using=using).using(using)[:1]
        other_sql, other_params = again.query.get_compiler(using=using).as_sql()
        bindings = self._bindings(params, other_params, others) if other_sql == sql else None
        compiled: _Compiled | None = None
        if bindings is not None:
            slots, constants = bindings
            klass_info = compiler.klass_info
            start = klass_info["select_fields"][0]
            end = klass_info["select_fields"][-1] + 1
            converters = []
            for index, (expression, _, _) in enumerate(compiler.select):
                functions = connection.ops.get_db_converters(
                    expression
                ) + expression.get_db_converters(connection)
                if functions:
                    converters.append((index, expression, tuple(functions)))
            compiled = _Compiled(
                sql=sql,
                slots=tuple(slots),
                constants=tuple(constants),
                select=compiler.select,
                klass_info=compiler.klass_info,
                annotation_col_map=compiler.annotation_col_map,
                converters=tuple(converters),
                names=tuple(column[0].target.attname for column in compiler.select[start:end]),
                start=start,
                end=end,
                populators=tuple(
                    get_related_populators(compiler.klass_info, compiler.select, using)
                ),
            )
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    def _bindings(
        self, params: Sequence[Any], other_params: Sequence[Any], others: tuple[Any, ...]
    ) -> tuple[list[int | None], list[Any]] | None:
        """Where each parameter comes from (a stand-in's index, or None and the constant it
        is), from the parameters of two compilations; None if one is neither."""
        if len(params) != len(other_params):
            return None
        slots: list[int | None] = []
        constants: list[Any] = []
        for param, other in zip(params, other_params, strict=True):
            matches = [index for index, value in enumerate(self.stand_ins) if param == value]
            if (
                len(matches) == 1
                and type(param) is type(self.stand_ins[matches[0]])
                and other == others[matches[0]]
            ):
                slots.append(matches[0])
                constants.append(None)
            elif not matches and param == other and isinstance(param, (str, int)):
                slots.append(None)
                constants.append(param)
            else:
                # A value the query made of a stand-in (or changed): not safe to reuse.
                return None
        return slots, constants

    def get(self, using: str, *values: Any) -> Model | None:
        """The instance ``build(*values, using=using)`` finds on ``using``, or None."""
        if len(values) != len(self.stand_ins):
            raise TypeError(f"{len(self.stand_ins)} values expected, got {len(values)}")
        compiled = self._compile(using)
        if compiled is None:
            return next(iter(self.build(*values, using=using).using(using)[:1]), None)
        connection = connections[using]
        # A fixed shape: prepared where the site says (``course_audit.prepared``).
        with prepared.cursor(using) as cursor:
            cursor.execute(
                compiled.sql,
                [
                    compiled.constants[index] if slot is None else values[slot]
                    for index, slot in enumerate(compiled.slots)
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for index, expression, functions in compiled.converters:
            for function in functions:
                row[index] = function(row[index], expression, connection)
        model = compiled.klass_info["model"]
        instance = model.from_db(using, list(compiled.names), row[compiled.start : compiled.end])
        for populator in compiled.populators:
            populator.populate(row, instance)
        for name, position in (compiled.annotation_col_map or {}).items():
            setattr(instance, name, row[position])
        return instance


def _other(value: str | int) -> str | int:
    """A stand-in other than ``value``, of its type."""
    return value - 1 if isinstance(value, int) else f"{value}~"
