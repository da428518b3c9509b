"""SQL pieces that SQLite and PostgreSQL spell differently, as SQLAlchemy constructs compiled per dialect.

JSON values are read *typed*: `json_text` is the value only when it is a JSON string, `json_number` only
when it is a JSON number (else NULL), so `5` and `"5"` never compare equal on one engine and not on the
other. Keys and paths are bound parameters, never pasted into SQL.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Date, Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, literal


class _JsonField(FunctionElement):
    inherit_cache = True

    def __init__(self, column: ColumnElement, key: str, *extra):
        super().__init__(column, literal(key, String), *extra)


class json_text(_JsonField):
    type = String()
    name = "json_text"
    inherit_cache = True


class json_number(_JsonField):
    type = Float()
    name = "json_number"
    inherit_cache = True


class json_is_true(_JsonField):
    type = Boolean()
    name = "json_is_true"
    inherit_cache = True


class json_is_false(_JsonField):
    type = Boolean()
    name = "json_is_false"
    inherit_cache = True


class json_is_set(_JsonField):
    type = Boolean()
    name = "json_is_set"
    inherit_cache = True


class json_list_has(_JsonField):
    type = Boolean()
    name = "json_list_has"
    inherit_cache = True

    def __init__(self, column: ColumnElement, key: str, item: str):
        super().__init__(column, key, literal(item, String))


class json_list_has_text(FunctionElement):
    type = Boolean()
    name = "json_list_has_text"
    inherit_cache = True


class utc_day(FunctionElement):
    type = Date()
    name = "utc_day"
    inherit_cache = True


def _args(element, compiler, **kw) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses]


# --- SQLite: json_type / json_extract with a path built from the bound key ---------------------------------


def _sqlite_path(key_sql: str) -> str:
    return f"'$.\"' || {key_sql} || '\"'"


@compiles(json_text, "sqlite")
def _sqlite_text(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    path = _sqlite_path(key)
    return f"(CASE WHEN json_type({column}, {path}) = 'text' THEN json_extract({column}, {path}) END)"


@compiles(json_number, "sqlite")
def _sqlite_number(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    path = _sqlite_path(key)
    return f"(CASE WHEN json_type({column}, {path}) IN ('integer', 'real') THEN json_extract({column}, {path}) END)"


@compiles(json_is_true, "sqlite")
def _sqlite_true(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce(json_type({column}, {_sqlite_path(key)}), '') = 'true')"


@compiles(json_is_false, "sqlite")
def _sqlite_false(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce(json_type({column}, {_sqlite_path(key)}), '') = 'false')"


@compiles(json_is_set, "sqlite")
def _sqlite_set(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce(json_type({column}, {_sqlite_path(key)}), 'null') != 'null')"


@compiles(json_list_has, "sqlite")
def _sqlite_list_has(element, compiler, **kw):
    column, key, item = _args(element, compiler, **kw)
    path = _sqlite_path(key)
    return (f"(coalesce(json_type({column}, {path}), '') = 'array' AND EXISTS "
            f"(SELECT 1 FROM json_each({column}, {path}) AS je WHERE je.type = 'text' AND je.value = {item}))")


@compiles(json_list_has_text, "sqlite")
def _sqlite_list_has_text(element, compiler, **kw):
    column, key, pattern = _args(element, compiler, **kw)
    path = _sqlite_path(key)
    return (f"(coalesce(json_type({column}, {path}), '') = 'array' AND EXISTS "
            f"(SELECT 1 FROM json_each({column}, {path}) AS je WHERE je.type = 'text' AND instr(lower(je.value), {pattern}) > 0))")


@compiles(utc_day, "sqlite")
def _sqlite_day(element, compiler, **kw):
    (column,) = _args(element, compiler, **kw)
    return f"date({column})"  # SQLite keeps UTC text: the date part is the UTC day


# --- PostgreSQL: jsonb operators ------------------------------------------------------------------------


@compiles(json_text, "postgresql")
def _pg_text(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(CASE WHEN jsonb_typeof({column} -> {key}) = 'string' THEN {column} ->> {key} END)"


@compiles(json_number, "postgresql")
def _pg_number(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(CASE WHEN jsonb_typeof({column} -> {key}) = 'number' THEN ({column} ->> {key})::float8 END)"


@compiles(json_is_true, "postgresql")
def _pg_true(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce({column} -> {key} = 'true'::jsonb, false))"


@compiles(json_is_false, "postgresql")
def _pg_false(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce({column} -> {key} = 'false'::jsonb, false))"


@compiles(json_is_set, "postgresql")
def _pg_set(element, compiler, **kw):
    column, key = _args(element, compiler, **kw)
    return f"(coalesce(jsonb_typeof({column} -> {key}), 'null') != 'null')"


@compiles(json_list_has, "postgresql")
def _pg_list_has(element, compiler, **kw):
    column, key, item = _args(element, compiler, **kw)
    return (f"(coalesce(jsonb_typeof({column} -> {key}), '') = 'array' AND "
            f"({column} -> {key}) @> jsonb_build_array(CAST({item} AS text)))")


@compiles(json_list_has_text, "postgresql")
def _pg_list_has_text(element, compiler, **kw):
    column, key, pattern = _args(element, compiler, **kw)
    return (f"(coalesce(jsonb_typeof({column} -> {key}), '') = 'array' AND EXISTS "
            f"(SELECT 1 FROM jsonb_array_elements({column} -> {key}) AS je(v) WHERE jsonb_typeof(je.v) = 'string' "
            f"AND strpos(translate(je.v #>> '{{}}', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), {pattern}) > 0))")


@compiles(utc_day, "postgresql")
def _pg_day(element, compiler, **kw):
    (column,) = _args(element, compiler, **kw)
    return f"CAST(({column} AT TIME ZONE 'UTC') AS date)"


class ascii_lower(FunctionElement):
    type = String()
    name = "ascii_lower"
    inherit_cache = True


class has_text(FunctionElement):
    type = Boolean()
    name = "has_text"
    inherit_cache = True


@compiles(ascii_lower, "sqlite")
def _sqlite_lower(element, compiler, **kw):
    (column,) = _args(element, compiler, **kw)
    return f"lower({column})"  # SQLite's lower() folds ASCII only


@compiles(ascii_lower, "postgresql")
def _pg_lower(element, compiler, **kw):
    (column,) = _args(element, compiler, **kw)
    return f"translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


@compiles(has_text, "sqlite")
def _sqlite_has_text(element, compiler, **kw):
    haystack, needle = _args(element, compiler, **kw)
    return f"(instr({haystack}, {needle}) > 0)"


@compiles(has_text, "postgresql")
def _pg_has_text(element, compiler, **kw):
    haystack, needle = _args(element, compiler, **kw)
    return f"(strpos({haystack}, {needle}) > 0)"
