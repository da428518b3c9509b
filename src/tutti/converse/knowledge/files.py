"""Knowledge files in and out: CSV, JSONL and Markdown.

CSV and JSONL rows are `id, question, answer` with optional `title, language, topic, team, tags, kind`.
Several rows with the same id add phrasings to one item (the answer may be left empty on the extra rows;
a different answer is an error). JSONL may also carry all phrasings at once as `"questions": [...]`.
Markdown is articles: each `# ` heading starts one article (a file without one is one article named
after the file); an `<!-- id: ... -->` comment under the heading keeps its id across export and import.
Articles are split into passages at `## `/`### ` headings and, for long sections, at paragraphs.

Parsing never touches the database; it returns records and a list of row-numbered problems, so an import
can refuse the whole file and say every line that is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from tutti.ai.text import has_han
from tutti.converse.knowledge.models import KINDS, LANGUAGES
from tutti.platform.errors import InvalidInput

MAX_ROWS = 200_000
PASSAGE_CHARS = 600
_ID = re.compile(r"^[\w.:/-]{1,200}$", re.UNICODE)
_ID_COMMENT = re.compile(r"^<!--\s*id:\s*(\S+)\s*-->$")


@dataclass
class Record:
    external_id: str
    answer: str = ""
    title: str = ""
    kind: str = "faq"
    language: str | None = None
    topic: str | None = None
    team: str | None = None
    tags: list[str] = field(default_factory=list)
    phrasings: list[str] = field(default_factory=list)
    row: int = 0  # first row (line) of the record in its file


@dataclass
class Problem:
    row: int
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


def guess_language(texts: list[str]) -> str:
    han = sum(1 for text in texts if has_han(text))
    if han == len(texts):
        return "zh-TW"
    return "en" if han == 0 else "both"


def detect_format(filename: str) -> str:
    suffix = PurePath(filename or "").suffix.lower()
    formats = {
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
        ".md": "markdown",
        ".markdown": "markdown",
    }
    if suffix not in formats:
        raise InvalidInput(f"cannot tell the format of '{filename}': use .csv, .jsonl or .md", field="file")
    return formats[suffix]


def decode(filename: str, data: bytes | str) -> str:
    """The file's text (UTF-8, with or without a BOM); InvalidInput naming the file when it is not UTF-8."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{filename} is not UTF-8 text (byte {error.start}): save it as UTF-8", field="file") from None


def parse(filename: str, data: bytes | str) -> list[Record]:
    """Records of a knowledge file; raises InvalidInput listing every problem with its row number."""
    text = decode(filename, data)
    kind = detect_format(filename)
    problems: list[Problem] = []
    if kind == "markdown":
        records = parse_markdown(text, default_id=PurePath(filename).stem)
    else:
        rows = csv_rows(text, problems, ("id", "answer")) if kind == "csv" else jsonl_rows(text, problems)
        records = _records(rows, problems)
    if not records and not problems:
        problems.append(Problem(0, "file", "the file holds no knowledge items"))
    if problems:
        shown = problems[:50]
        head = "; ".join(f"row {p.row}: {p.field}: {p.message}" for p in shown[:5])
        raise InvalidInput(
            f"{len(problems)} problem(s) in {filename}: {head}",
            field="file",
            details=[p.as_dict() for p in shown],
        )
    return records


def csv_rows(text: str, problems: list[Problem], columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line, {lower-case column: stripped value}) per non-blank row; a missing one of `columns`, or more
    than MAX_ROWS rows, is a problem."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return []
    names = {name.strip().lower(): name for name in reader.fieldnames if name}
    for needed in columns:
        if needed not in names:
            problems.append(Problem(1, needed, f"the header has no '{needed}' column"))
    if problems:
        return []
    rows = []
    for index, raw in enumerate(reader, start=2):
        if index > MAX_ROWS:
            problems.append(Problem(index, "file", f"more than {MAX_ROWS} rows"))
            break
        row = {key: (raw.get(original) or "").strip() for key, original in names.items()}
        if any(row.values()):
            rows.append((index, row))
    return rows


def jsonl_rows(text: str, problems: list[Problem]) -> list[tuple[int, dict]]:
    """(line, {lower-case key: value}) per JSON object line (a JSON array is accepted too)."""
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array is accepted too
        try:
            values = json.loads(stripped)
        except ValueError as error:
            problems.append(Problem(1, "file", f"not valid JSON: {error}"))
            return []
        lines = list(enumerate(values, start=1))
    else:
        lines = []
        for index, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                lines.append((index, json.loads(line)))
            except ValueError as error:
                problems.append(Problem(index, "line", f"not valid JSON: {error.msg}"))
    rows = []
    for index, value in lines:
        if not isinstance(value, dict):
            problems.append(Problem(index, "line", "each line must be a JSON object"))
            continue
        rows.append((index, {str(k).lower(): v for k, v in value.items()}))
    return rows


def _text(value, row: int, name: str, problems: list[Problem]) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        problems.append(Problem(row, name, "must be text"))
        return ""
    return value.strip()


def _records(rows: list[tuple[int, dict]], problems: list[Problem]) -> list[Record]:
    by_id: dict[str, Record] = {}
    for index, row in rows:
        external_id = _text(row.get("id"), index, "id", problems)
        if not external_id:
            problems.append(Problem(index, "id", "is empty"))
            continue
        if not _ID.match(external_id):
            problems.append(Problem(index, "id", "use letters, digits and - _ . : / (at most 200)"))
            continue
        questions = []
        if row.get("question") not in (None, ""):
            questions.append(_text(row.get("question"), index, "question", problems))
        many = row.get("questions")
        if many is not None:
            if not isinstance(many, list):
                problems.append(Problem(index, "questions", "must be a list of texts"))
            else:
                questions.extend(_text(q, index, "questions", problems) for q in many)
        record = by_id.get(external_id)
        if record is None:
            record = by_id[external_id] = Record(external_id=external_id, row=index)
        answer = _text(row.get("answer"), index, "answer", problems)
        if answer:
            if record.answer and record.answer != answer:
                problems.append(
                    Problem(
                        index, "answer", f"differs from the answer of '{external_id}' on row {record.row}"
                    )
                )
            record.answer = record.answer or answer
        for name in ("title", "topic", "team"):
            value = _text(row.get(name), index, name, problems)
            if value:
                setattr(record, name, value[:300] if name == "title" else value[:100])
        kind = _text(row.get("kind"), index, "kind", problems)
        if kind:
            if kind not in KINDS:
                problems.append(Problem(index, "kind", f"must be one of {', '.join(KINDS)}"))
            record.kind = kind
        language = _text(row.get("language"), index, "language", problems)
        if language:
            if language not in LANGUAGES:
                problems.append(Problem(index, "language", f"must be one of {', '.join(LANGUAGES)}"))
            record.language = language
        tags = row.get("tags")
        if isinstance(tags, str) and tags.strip():
            record.tags.extend(t.strip() for t in re.split(r"[,;|]", tags) if t.strip())
        elif isinstance(tags, list):
            record.tags.extend(str(t).strip() for t in tags if str(t).strip())
        for question in questions:
            if question and question not in record.phrasings:
                record.phrasings.append(question)
    for record in by_id.values():
        if not record.answer and record.kind != "out_of_scope":
            problems.append(Problem(record.row, "answer", f"'{record.external_id}' has no answer"))
        if record.kind == "out_of_scope" and not record.phrasings:
            problems.append(Problem(record.row, "question", f"'{record.external_id}' has no question"))
        if record.kind == "faq" and not record.phrasings and not record.title:
            problems.append(Problem(record.row, "question", f"'{record.external_id}' has no question"))
        record.tags = list(dict.fromkeys(record.tags))
        if not record.title:
            record.title = (record.phrasings[0] if record.phrasings else record.external_id)[:300]
        if record.language is None:
            record.language = guess_language(record.phrasings or [record.answer])
    return list(by_id.values())


def parse_markdown(text: str, *, default_id: str = "article") -> list[Record]:
    """Articles of a Markdown file: one per `# ` heading, or the whole file as one."""
    records: list[Record] = []
    current: Record | None = None
    body: list[str] = []

    def close():
        if current is not None:
            current.answer = "\n".join(body).strip()
            current.language = guess_language([current.title + " " + current.answer])
            records.append(current)

    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# "):
            close()
            title = line[2:].strip()
            current = Record(
                external_id=_slug(title) or f"{default_id}-{len(records) + 1}",
                title=title,
                kind="article",
                row=number,
            )
            body = []
            continue
        marker = _ID_COMMENT.match(line.strip())
        if marker and current is not None and not any(b.strip() for b in body):
            current.external_id = marker.group(1)
            continue
        if current is None:
            if not line.strip():
                continue
            current = Record(
                external_id=_slug(default_id) or "article", title=default_id, kind="article", row=number
            )
        body.append(line)
    close()
    return [r for r in records if r.answer]


def _slug(text: str) -> str:
    value = re.sub(r"[^\w]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-")
    return value[:80]


def split_passages(markdown: str, title: str = "") -> list[tuple[str, str]]:
    """(heading, text) pieces of an article: one per `##`/`###` section, long sections cut at paragraphs
    into pieces of about PASSAGE_CHARS."""
    sections: list[tuple[str, list[str]]] = [(title, [])]
    for line in markdown.splitlines():
        if re.match(r"^#{2,6} ", line):
            sections.append((line.lstrip("#").strip(), []))
        else:
            sections[-1][1].append(line)
    out = []
    for heading, lines in sections:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
        chunk = ""
        for paragraph in paragraphs:
            if chunk and len(chunk) + len(paragraph) > PASSAGE_CHARS:
                out.append((heading, chunk))
                chunk = ""
            chunk = f"{chunk}\n\n{paragraph}".strip()
        if chunk:
            out.append((heading, chunk))
    return out


# --- export ----------------------------------------------------------------------------------------------


def export_jsonl(items: list[dict]) -> str:
    lines = []
    for item in items:
        row = {
            "id": item["external_id"],
            "kind": item["kind"],
            "title": item["title"],
            "answer": item["answer"],
            "language": item["language"],
            "topic": item["topic"],
            "team": item["team"],
            "tags": item["tags"],
            "enabled": item["enabled"],
            "questions": item["phrasings"],
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


def export_csv(items: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "question", "answer", "title", "language", "topic", "team", "tags", "kind"])
    for item in items:
        phrasings = item["phrasings"] or [""]
        for index, question in enumerate(phrasings):
            first = index == 0
            writer.writerow(
                [
                    item["external_id"],
                    question,
                    item["answer"] if first else "",
                    item["title"] if first else "",
                    item["language"] if first else "",
                    (item["topic"] or "") if first else "",
                    (item["team"] or "") if first else "",
                    ",".join(item["tags"]) if first else "",
                    item["kind"] if first else "",
                ]
            )
    return out.getvalue()


def export_markdown(items: list[dict]) -> str:
    parts = []
    for item in items:
        parts.append(f"# {item['title']}\n<!-- id: {item['external_id']} -->\n\n{item['answer'].strip()}\n")
    return "\n".join(parts)
