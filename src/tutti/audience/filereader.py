"""Reading the tables people export from shops, CRMs and Excel: CSV/TSV in any of the encodings Taiwan and
Japan use, Excel's "Unicode text", XLSX and old XLS, with title lines above the header and blank lines.

A table keeps the row numbers a person sees in the file (the first row is 1), so errors can point at them.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time

from tutti.platform.errors import InvalidInput, TooLarge

MAX_FILE_BYTES = 100 * 1024 * 1024
DELIMITERS = (",", "\t", ";", "|")
TEXT_ENCODINGS = ("utf-8", "cp950", "big5hkscs", "cp932")  # tried in this order when there is no BOM
HEADER_SCAN_ROWS = 20

Cell = str | int | float | date | datetime | bool | None


@dataclass
class Table:
    file_format: str  # csv, xlsx, xls
    headers: list[str]
    rows: list[tuple[int, list[Cell]]]  # (row number in the file, cells aligned with headers); blank rows dropped
    header_row: int = 1
    encoding: str | None = None
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return len(self.rows)


def detect_format(content: bytes, filename: str = "") -> str:
    """By content first (people rename files), by extension when the content does not tell."""
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if content[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "xls"
    return "csv"


def decode(content: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was in."""
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return content.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InvalidInput("the file starts like UTF-16 text but is not valid UTF-16", field="file") from None
    sample = content[:4096]
    if len(sample) >= 4 and sample.count(0) >= len(sample) // 4:
        # UTF-16 without a BOM: one byte of most ASCII characters is zero
        encoding = "utf-16-le" if sample[1::2].count(0) > sample[0::2].count(0) else "utf-16-be"
        try:
            return content.decode(encoding), encoding
        except UnicodeDecodeError:
            raise InvalidInput("the file is binary, not a CSV or Excel file", field="file") from None
    if b"\x00" in sample:
        raise InvalidInput("the file is binary, not a CSV or Excel file", field="file")
    for encoding in TEXT_ENCODINGS:
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text, encoding
    raise InvalidInput("cannot tell the file's text encoding (tried UTF-8, Big5, Shift-JIS); save it as UTF-8 CSV",
                       field="file")


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def detect_delimiter(text: str, filename: str = "") -> str:
    """The delimiter that splits the first lines most consistently into the most columns."""
    lines = [line for line in text.splitlines()[:50] if line.strip()][:HEADER_SCAN_ROWS]
    if not lines:
        return "\t" if filename.lower().endswith((".tsv", ".tab")) else ","
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        counts = [_count_outside_quotes(line, delimiter) for line in lines]
        common = max(set(counts), key=counts.count)
        if common == 0:
            continue
        score = (counts.count(common) / len(counts), common)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def clean_header(value: Cell) -> str:
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "").replace("\u200b", "")
    return " ".join(text.split())


def clean_text(value: str) -> str:
    return value.replace("\ufeff", "").replace("\u200b", "").strip()


def _is_blank(cells: list[Cell]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _records_from_csv(content: bytes, filename: str, encoding: str | None, delimiter: str | None):
    if encoding:
        try:
            text = content.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise InvalidInput(f"the file is not valid {encoding}", field="file") from None
        if text.startswith("\ufeff"):
            text = text[1:]
    else:
        text, encoding = decode(content)
    if "\x00" in text:
        raise InvalidInput("the file is binary, not a CSV or Excel file", field="file")
    delimiter = delimiter or detect_delimiter(text, filename)
    try:
        records = [[clean_text(cell) for cell in record] for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as error:
        raise InvalidInput(f"the CSV file cannot be read: {error}", field="file") from None
    return records, encoding, delimiter


def _excel_value(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e15 else value
    if isinstance(value, time):
        return value.isoformat()
    return value


def _records_from_xlsx(content: bytes):
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as error:  # zipfile, XML and openpyxl errors of damaged or foreign files
        raise InvalidInput(f"the Excel file cannot be read ({error.__class__.__name__}); save it again as .xlsx or CSV",
                           field="file") from None
    try:
        sheet = book.active or book.worksheets[0]
        return [[_excel_value(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    except Exception as error:  # openpyxl raises many kinds of errors on damaged files
        raise InvalidInput(f"the Excel file cannot be read ({error.__class__.__name__})", field="file") from None
    finally:
        book.close()


def _records_from_xls(content: bytes):
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=content)
        sheet = book.sheet_by_index(0)
    except Exception as error:  # xlrd.XLRDError and struct errors on damaged files
        raise InvalidInput(f"the .xls file cannot be read ({error}); save it again as .xlsx or CSV", field="file") from None
    records = []
    for index in range(sheet.nrows):
        row = []
        for cell in sheet.row(index):
            if cell.ctype == xlrd.XL_CELL_DATE:
                try:
                    row.append(xlrd.xldate_as_datetime(cell.value, book.datemode))
                except (ValueError, OverflowError):
                    row.append(cell.value)
            elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                row.append(None)
            elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                row.append(bool(cell.value))
            elif cell.ctype == xlrd.XL_CELL_ERROR:
                row.append(None)
            else:
                row.append(_excel_value(cell.value))
        records.append(row)
    return records


def find_header_row(records: list[list[Cell]]) -> int:
    """Index of the header: the first row about as wide as the table (skips title lines above it)."""
    widths = [sum(1 for c in record if not _is_blank([c])) for record in records[:HEADER_SCAN_ROWS]]
    if not any(widths):
        return 0
    widest = max(widths)
    needed = max(1, math.ceil(widest * 0.6))
    return next(index for index, width in enumerate(widths) if width >= needed)


def read_table(
    content: bytes,
    filename: str = "",
    *,
    file_format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
) -> Table:
    """Read a whole file. Detected settings are returned on the Table; passing them back reads the same way."""
    if len(content) > MAX_FILE_BYTES:
        raise TooLarge(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into smaller files", field="file")
    if not content or not content.strip(b" \t\r\n\x00"):
        raise InvalidInput("the file is empty", field="file")
    file_format = file_format or detect_format(content, filename)
    if file_format == "xlsx":
        records, encoding, delimiter = _records_from_xlsx(content), None, None
    elif file_format == "xls":
        records, encoding, delimiter = _records_from_xls(content), None, None
    else:
        records, encoding, delimiter = _records_from_csv(content, filename, encoding, delimiter)
    if not records or all(_is_blank(r) for r in records):
        raise InvalidInput("the file has no rows", field="file")
    header_index = header_row - 1 if header_row else find_header_row(records)
    if header_index >= len(records):
        raise InvalidInput(f"row {header_index + 1} (the header) is past the end of the file", field="header_row")
    width = max(len(r) for r in records[header_index:])
    raw_headers = list(records[header_index]) + [None] * (width - len(records[header_index]))
    headers: list[str] = []
    seen: dict[str, int] = {}
    for position, value in enumerate(raw_headers, start=1):
        name = clean_header(value) or f"column {position}"
        if name in seen:  # two columns with one name: keep both, tell them apart
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        headers.append(name)
    # drop trailing unnamed columns that hold nothing (Excel's stray formatted cells)
    while len(headers) > 1 and headers[-1].startswith("column ") and all(
        len(r) < len(headers) or _is_blank([r[len(headers) - 1]]) for r in records[header_index + 1:]
    ):
        headers.pop()
    rows = []
    for index in range(header_index + 1, len(records)):
        record = records[index]
        if _is_blank(record):
            continue
        cells = list(record[: len(headers)]) + [None] * (len(headers) - len(record))
        rows.append((index + 1, cells))
    return Table(file_format=file_format, headers=headers, rows=rows, header_row=header_index + 1,
                 encoding=encoding, delimiter=delimiter)
