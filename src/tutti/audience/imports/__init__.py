"""Imports of members and orders from CSV and Excel files.

The flow: `create_import` reads the file, guesses what each column is and stores the file on an ImportJob;
`preview` checks every row against a (possibly edited) mapping and changes nothing; `start` queues the
job; `run` is the job body. Checking is a pure function of the file, the mapping and the workspace's
settings, so any worker can redo it and get the same answer. Rows are then written in chunks, each
chunk's writes and its checkpoint (`processed_rows`, counts, errors) in one transaction: a crash anywhere
resumes at the last committed chunk, and nothing is written twice. Bad rows are reported with the row
number a person sees in the file, the column and the reason (in English and zh-TW), and skipped.

The package, one job per module: `fields` (what a column can be), `mapping` (guessing and checking which
column is which), `dates` and `values` (reading one cell), `reasons` (why a row is skipped), `validation`
(checking every row), `service` (upload, preview, start, show), `job` (the resumable run), `writing` (the
set-based writes of a chunk) and `cli` (`tutti import`).
"""

from tutti.audience.imports.cli import run_from_cli
from tutti.audience.imports.dates import parse_date, parse_datetime
from tutti.audience.imports.fields import (
    ATTRIBUTE_PREFIX,
    FIELD_LABELS,
    IGNORE,
    KINDS,
    MEMBER_FIELDS,
    ORDER_FIELDS,
    field_labels,
    fields_for,
)
from tutti.audience.imports.job import CHUNK_SIZE, run, stalled_imports
from tutti.audience.imports.mapping import check_mapping, guess_mapping
from tutti.audience.imports.reasons import REASONS, RowError
from tutti.audience.imports.service import (
    as_dict,
    create_import,
    get_import,
    list_imports,
    preview,
    save_mapping,
    start,
)
from tutti.audience.imports.validation import Settings, Validation, validate

__all__ = [
    "ATTRIBUTE_PREFIX", "CHUNK_SIZE", "FIELD_LABELS", "IGNORE", "KINDS", "MEMBER_FIELDS", "ORDER_FIELDS", "REASONS",
    "RowError", "Settings", "Validation", "as_dict", "check_mapping", "create_import", "field_labels", "fields_for",
    "get_import", "guess_mapping", "list_imports", "parse_date", "parse_datetime", "preview", "run", "run_from_cli",
    "save_mapping", "stalled_imports", "start", "validate",
]
