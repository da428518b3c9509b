"""`column IN (many ids)` as ONE bound value, not one bind parameter per id.

An expanded `IN (:id_1, …, :id_5000)` makes the driver parse and send a statement of thousands of
parameters on every claim (psycopg's query splitting alone cost more than the UPDATE it carried).
PostgreSQL takes the list as one array literal cast to bigint[] (`= ANY(…)`): handing psycopg a Python
list made it dump each element in Python, a tenth of a sender's time; SQLite takes one JSON text
(`IN json_each(…)`).
"""

from __future__ import annotations

import orjson
from sqlalchemy import BigInteger, String, all_, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY


def in_ids(column, ids: list[int], dialect: str):
    if dialect == "postgresql":
        return column == any_(_array(ids))
    return column.in_(_json_values(ids))


def not_in_ids(column, ids: list[int], dialect: str):
    """The negation (`~in_ids(…)` would give `<> ANY`, true for nearly every row)."""
    if dialect == "postgresql":
        return column != all_(_array(ids))
    return column.not_in(_json_values(ids))


def _array(ids: list[int]):
    # the ids are the database's own integers; a stray value would fail the bigint cast (it is a bound
    # parameter, never SQL text)
    literal = "{" + ",".join(map(str, ids)) + "}"
    return cast(bindparam(None, literal, type_=String), ARRAY(BigInteger))


def _json_values(ids: list[int]):
    listed = func.json_each(bindparam(None, orjson.dumps(list(ids)).decode())).table_valued("value")
    return select(listed.c.value)
