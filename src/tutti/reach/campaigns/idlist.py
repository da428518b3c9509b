"""`column IN (many ids)` as ONE bound value, not one bind parameter per id.

An expanded `IN (:id_1, …, :id_5000)` makes the driver parse and send a statement of thousands of
parameters on every claim (psycopg's query splitting alone cost more than the UPDATE it carried).
PostgreSQL takes the list as one array literal cast to bigint[] (`= ANY(…)`): handing psycopg a Python
list made it dump each element in Python, a tenth of a sender's time; SQLite takes one JSON text
(`IN json_each(…)`).
"""

from __future__ import annotations

import orjson
from sqlalchemy import BigInteger, String, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY


def in_ids(column, ids: list[int], dialect: str):
    if dialect == "postgresql":
        literal = "{" + ",".join(map(str, map(int, ids))) + "}"
        return column == any_(cast(bindparam(None, literal, type_=String), ARRAY(BigInteger)))
    listed = func.json_each(bindparam(None, orjson.dumps(list(ids)).decode())).table_valued("value")
    return column.in_(select(listed.c.value))
