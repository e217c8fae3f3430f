"""Turn chunks of registry CSV into typed Arrow tables, setting aside the rows that break the contract.

Contract: a row is loaded only if it is well-formed CSV (records.py) with 25 fields, no NUL, an integer
`id_evento_caso` that fits bigint, integer codes that fit integer, dates that are real `YYYY-MM-DD`
dates between 1900 and 2100 or empty (`ultima_actualizacion` never empty), none of them in the future of
the row's own publication (FutureDates), SI/NO flags and a known age unit. Everything else goes to the rejects with its line number, raw text and the column at fault.
Empty fields become NULL. Categorical values that differ from SISA's only in case or spacing
(`confirmado `) are written as SISA writes them; any other value is kept as it is (a check reports it).
A value's verdict never depends on the other rows of its chunk.
"""

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from covid_pipeline.ingest.errors import Reject, SourceFormatError
from covid_pipeline.ingest.reader import Chunk, Utf8Stream, looks_double_encoded
from covid_pipeline.ingest.records import Lines, read_records
from covid_pipeline.ingest.registry_format import (
    FIRST_YEAR,
    LAST_YEAR,
    REGISTRY_COLUMNS,
    SOURCE_NAMES,
    TARGET_NAMES,
    Kind,
)

ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
N_FIELDS = len(REGISTRY_COLUMNS)
FLAGS = {"SI": True, "NO": False}
MONTHS_UNIT, YEARS_UNIT = "Meses", "Años"
# The largest values of the target columns (bigint for the id, integer for codes and ages).
LARGEST = {Kind.ID: str(2**63 - 1), Kind.INT: str(2**31 - 1)}


# The Arrow values cleaning compares with are built from raw buffers: converting a Python object
# (pa.array, pa.scalar, a str or int given to pyarrow.compute) makes pyarrow import pandas on first use,
# a quarter of a second per process that loading never needs.
def _arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A NumPy array of fixed-width numbers, as Arrow, without converting Python objects."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def _bools(mask: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(
        pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))]
    )


def _strings(*values: str) -> pa.Array:
    data = [value.encode() for value in values]
    offsets = np.cumsum([0, *map(len, data)], dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


FLAG_VALUES, AGE_UNITS = _strings(*FLAGS), _strings(YEARS_UNIT, MONTHS_UNIT)
YES, MONTHS = FLAG_VALUES[0], AGE_UNITS[1]
FALSE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(np.zeros(1, np.uint8))])[0]
EPOCH = date(1970, 1, 1).toordinal()
FIRST_DAY, LAST_DAY = date(FIRST_YEAR, 1, 1).toordinal() - EPOCH, date(LAST_YEAR, 12, 31).toordinal() - EPOCH
MONTHS_A_YEAR = _arrow(np.array([12], np.int32), pa.int32())[0]


ARGENTINA = ZoneInfo("America/Argentina/Buenos_Aires")  # where SISA dates its publications


def today_in_argentina() -> date:
    return datetime.now(ARGENTINA).date()


@dataclass(frozen=True)
class FutureDates:
    """Dates that cannot have happened yet. Each row is judged on its own, as it streams: its
    `ultima_actualizacion` may not lie after the day of the load, and no other date after that
    `ultima_actualizacion`, each with `tolerance_days` of slack for clocks and records stamped around
    midnight. The publication's own date (its most common `ultima_actualizacion`) is known only at the end
    of the file; a row's own date is known at once and, but for a damaged row, the same."""

    tolerance_days: int = 1
    load_day: date = field(default_factory=today_in_argentina)


@dataclass
class CleanChunk:
    table: pa.Table  # typed, TARGET_NAMES + source_line
    rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    tail: Chunk | None = None  # an unfinished record, read again with the next chunk


def split_header(stream: Utf8Stream, chunk: Chunk) -> Chunk:
    """Check the header at the start of the file's first chunk (blank lines before it are skipped: they hold
    nothing) and return the rest of the chunk, checked as UTF-8, its lines numbered as in the file."""
    data = chunk.data
    blank = len(data) - len(data.lstrip(b"\r\n"))
    blank_lines = data.count(b"\n", 0, blank)
    start = data.rfind(b"\n", 0, blank) + 1  # the header's own line starts here
    header = data[start : data.find(b"\n", start) + 1]
    if looks_double_encoded(header.decode("utf-8", errors="replace")):
        stream.set_double_encoding_repair()
    checked = stream.validate(Chunk(data[start:], 1 + blank_lines, chunk.rejects))
    newline = checked.data.find(b"\n") + 1
    check_header(checked.data[:newline], stream.name, checked.first_line)
    return Chunk(checked.data[newline:], checked.first_line + 1, checked.rejects)


def check_header(header_line: bytes, file_name: str, line_number: int = 1) -> None:
    """Fail before anything is written if the columns are not the registry's 25, in order.

    Names are compared in Unicode's composed form (NFC): a file re-saved on macOS may write the ñ of
    edad_años_meses as n and a combining tilde, the same name to a reader."""
    text = header_line.decode("utf-8").rstrip("\r\n")
    found = [unicodedata.normalize("NFC", name) for name in next(csv.reader([text]))]
    expected = list(SOURCE_NAMES)
    if found == expected:
        return
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    details = []
    if missing:
        details.append(f"missing: {', '.join(missing)}")
    if extra:
        details.append(f"unexpected: {', '.join(extra)}")
    if not details:
        details.append("same columns in another order")
    raise SourceFormatError(
        f"{file_name}, line {line_number}: the header does not match the registry format ({'; '.join(details)}).\n"
        f"Expected {N_FIELDS} columns: {', '.join(expected)}\n"
        f"Found {len(found)} columns: {', '.join(found)}\n"
        "Nothing was loaded. If the Ministry changed the format, update covid_pipeline/ingest/registry_format.py."
    )


def clean_chunk(chunk: Chunk, final: bool = True, future: FutureDates | None = None) -> CleanChunk:
    """Parse and type one chunk of whole records (the header already removed).

    Unless `final`, a record still open at the chunk's end (a quoted newline the reader's cut fell
    inside, after a stray quote) is handed back as `tail`, to be read again in front of the next chunk.
    The lines the reader already set aside (`chunk.rejects`) come first among the rejects.
    """
    if chunk.data:
        cleaned = _clean_records(chunk, final, future)
    else:
        no_rows = np.zeros(0, dtype=np.int64)
        cleaned = CleanChunk(_type_columns(_read_strings(b""), no_rows, no_rows, chunk, None, future)[0])
    if chunk.rejects:
        cleaned.rejects[:0] = chunk.rejects
        cleaned.rows_read += len(chunk.rejects)
    return cleaned


def _clean_records(chunk: Chunk, final: bool, future: FutureDates | None) -> CleanChunk:
    lines = Lines(chunk.data)
    if lines.simple(count_fields=False).all():
        # The usual chunk: every line a well-quoted record; Arrow checks each row's field count as it parses.
        table = _read_strings(chunk.data)
        if table is not None and table.num_rows == len(lines):
            span = np.arange(len(lines))
            typed, rejects = _type_columns(table, span, span, chunk, lines, future)
            return CleanChunk(typed, rejects, rows_read=len(lines))
        return _clean_strictly(chunk, lines, np.zeros(len(lines), dtype=bool), final, future)
    return _clean_strictly(chunk, lines, lines.simple(), final, future)


def _clean_strictly(
    chunk: Chunk, lines: Lines, simple: np.ndarray, final: bool, future: FutureDates | None
) -> CleanChunk:
    """The records of the lines that are not `simple` read by records.py, the simple ones by Arrow."""
    records, tail = read_records(lines, np.flatnonzero(~simple & ~lines.blank), final)
    for record in records:
        simple[record.first : record.last + 1] = False
    if tail is not None:
        simple[tail:] = False
    assembled = _assemble(chunk.data, lines, simple, [r for r in records if r.fields is not None])
    if assembled is None:  # Arrow reads some line otherwise than records.py would: read them all strictly
        return _clean_strictly(chunk, lines, np.zeros(len(lines), dtype=bool), final, future)
    table, first, last = assembled
    rejects = [
        Reject(
            chunk.first_line + r.first,
            None if r.field is None or r.field >= N_FIELDS else SOURCE_NAMES[r.field],
            r.reason,
            lines.text(r.first, r.last),
        )
        for r in records
        if r.fields is None
    ]
    typed, more_rejects = _type_columns(table, first, last, chunk, lines, future)
    cleaned = CleanChunk(typed, rejects + more_rejects, rows_read=len(first) + len(rejects))
    if tail is not None:
        cleaned.tail = Chunk(chunk.data[lines.starts[tail] :], chunk.first_line + tail)
    return cleaned


def _assemble(
    data: bytes, lines: Lines, simple: np.ndarray, records: list
) -> tuple[pa.Table, np.ndarray, np.ndarray] | None:
    """One table of the simple lines (read by Arrow) and the records read strictly, in file order,
    with each row's first and last physical line."""
    simple_lines = np.flatnonzero(simple)
    text = b"".join(
        data[s : e + 1] for s, e in zip(lines.starts[simple_lines], lines.ends[simple_lines], strict=True)
    )
    fast = _read_strings(text)
    if fast is None or fast.num_rows != len(simple_lines):
        return None
    columns = [
        [None if not r.fields[i] else r.fields[i].decode("utf-8") for r in records] for i in range(N_FIELDS)
    ]
    strict = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(TARGET_NAMES, columns, strict=True)}
    )
    first = np.concatenate((simple_lines, np.array([r.first for r in records], dtype=np.int64)))
    last = np.concatenate((simple_lines, np.array([r.last for r in records], dtype=np.int64)))
    order = np.argsort(first, kind="stable")
    table = pa.concat_tables([fast, strict]).take(_arrow(order.astype(np.int64), pa.int64()))
    return table, first[order], last[order]


def _read_strings(data: bytes) -> pa.Table | None:
    """Every field as a string (None when Arrow finds a row of another field count)."""
    if not data:
        return pa.table({name: pa.array([], pa.string()) for name in TARGET_NAMES})

    disagreements = []

    def disagree(row):
        # Arrow swallows an exception raised here (and fails with its own): note the row, skip it.
        disagreements.append(row.text[:200])
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=list(TARGET_NAMES), block_size=1 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, invalid_row_handler=disagree),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(TARGET_NAMES, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    return None if disagreements else table


def _type_columns(
    table: pa.Table,
    first: np.ndarray,
    last: np.ndarray,
    chunk: Chunk,
    lines: Lines,
    future: FutureDates | None,
) -> tuple[pa.Table, list[Reject]]:
    """Typed columns for the rows of `table`, which span physical lines first..last (chunk indexes)."""
    typed: dict[str, pa.Array] = {}
    reason = np.full(table.num_rows, None, dtype=object)  # first problem found in each row
    for column in REGISTRY_COLUMNS:
        values = table.column(column.target)
        if column.canonical:
            values = _canonical(values, column.canonical)
        converted, bad = _convert(column.kind, values)
        if column.required and values.null_count:
            missing = _mask(pc.is_null(values))
            bad = missing if bad is None else bad | missing
        typed[column.target] = converted
        if bad is not None:
            for i in np.flatnonzero(bad & (reason == None)):  # noqa: E711 (elementwise)
                reason[i] = (column.source, _describe(column, values[int(i)].as_py()))
    _note_future_dates(typed, reason, future or FutureDates())
    typed["age_years"] = _age_in_years(typed["age_years"], typed["age_unit"])
    typed["source_line"] = _arrow((chunk.first_line + first).astype(np.int64), pa.int64())
    result = pa.table(typed)
    rejected = np.flatnonzero(reason != None)  # noqa: E711
    if not len(rejected):
        return result, []
    rejects = []
    for i in rejected:
        column_name, why = reason[i]
        rejects.append(
            Reject(chunk.first_line + int(first[i]), column_name, why, lines.text(first[i], last[i]))
        )
    keep = _bools(reason == None)  # noqa: E711
    return result.filter(keep), rejects


DATE_COLUMNS = tuple(c for c in REGISTRY_COLUMNS if c.kind is Kind.DATE and c.target != "last_updated")
LAST_UPDATED = next(c for c in REGISTRY_COLUMNS if c.target == "last_updated")


def _note_future_dates(typed: dict, reason: np.ndarray, future: FutureDates) -> None:
    """Give rows with an impossible future date their reason (rows that already have one keep it): the
    publication date first, then each other date against that row's own publication date."""
    slack = future.tolerance_days
    published = pc.cast(typed[LAST_UPDATED.target], pa.int32())
    latest_publication = future.load_day.toordinal() - EPOCH + slack
    if (pc.max(published).as_py() or 0) > latest_publication:
        after = _mask(pc.greater(published, _day(latest_publication)))
        for i in np.flatnonzero(after & (reason == None)):  # noqa: E711
            reason[i] = (
                LAST_UPDATED.source,
                f"{LAST_UPDATED.source}: {typed[LAST_UPDATED.target][int(i)].as_py()} is after the day of the load, "
                f"{future.load_day} in Argentina (with {slack} day(s) of tolerance): a publication cannot be "
                "dated in the future",
            )
    latest = pc.add(published, _day(slack))
    for column in DATE_COLUMNS:
        days = pc.cast(typed[column.target], pa.int32())
        later = pc.greater(days, latest)
        if not pc.any(later).as_py():
            continue
        for i in np.flatnonzero(_mask(later) & (reason == None)):  # noqa: E711
            reason[i] = (
                column.source,
                f"{column.source}: {typed[column.target][int(i)].as_py()} is after the row's own ultima_actualizacion, "
                f"{typed[LAST_UPDATED.target][int(i)].as_py()} (with {slack} day(s) of tolerance): no case date can lie "
                "in the future of the publication that lists it",
            )


def _canonical(values: pa.ChunkedArray, canonical: tuple[str, ...]) -> pa.ChunkedArray:
    """Values written as SISA writes them when they differ only in case or surrounding spaces
    (`CONFIRMADO`, `Confirmado `); any other value is left exactly as it is."""
    spelled = _strings(*canonical)
    if (pc.sum(pc.is_in(values, value_set=spelled)).as_py() or 0) == len(values) - values.null_count:
        return values
    # NFC first: the same word with its accents composed or not (`Años` from a macOS re-save) is one value
    keys = pc.utf8_lower(pc.utf8_trim_whitespace(pc.utf8_normalize(values, form="NFC")))
    found = pc.index_in(keys, value_set=_strings(*(value.lower() for value in canonical)))
    return pc.coalesce(pc.take(spelled, found), values)


def _describe(column, value) -> str:
    shown = "empty" if value is None else repr(value)
    expected = {
        Kind.ID: "an integer id (at most 9223372036854775807)",
        Kind.INT: "an integer (at most 2147483647)",
        Kind.DATE: f"a date YYYY-MM-DD between {FIRST_YEAR} and {LAST_YEAR}",
        Kind.FLAG: "SI or NO",
        Kind.AGE_UNIT: f"{YEARS_UNIT} or {MONTHS_UNIT}",
        Kind.TEXT: "a value",
    }[column.kind]
    return f"{column.source}: expected {expected}, found {shown}"


def _convert(kind: Kind, values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """The typed column and a mask of rows whose value does not fit (None when all fit).

    Each kind tries the whole column at once first (the usual case: every value is good) and
    works out which rows are bad only when that fails; both ways give each value the same verdict.
    """
    if kind is Kind.TEXT:
        return values, None
    if kind in (Kind.ID, Kind.INT):
        return _integers(values, pa.int64() if kind is Kind.ID else pa.int32(), LARGEST[kind])
    if kind is Kind.DATE:
        try:
            # Arrow's cast is strict (YYYY-MM-DD, real calendar dates) and fast.
            dates, bad = pc.cast(values, pa.date32()), None
        except pa.ArrowInvalid:
            dates, bad = _dates_row_by_row(values)
        return _within_years(dates, bad)
    if kind is Kind.FLAG:
        known = pc.is_in(values, value_set=FLAG_VALUES)
        converted = pc.equal(values, YES)
        if pc.all(known).as_py() is not False:
            return converted, None
        return pc.if_else(pc.fill_null(known, FALSE), converted, pa.scalar(None, pa.bool_())), _bad(
            values, known
        )
    if kind is Kind.AGE_UNIT:
        known = pc.is_in(values, value_set=AGE_UNITS)
        return values, None if pc.all(known).as_py() is not False else _bad(values, known)
    raise AssertionError(kind)


def _integers(values, type_: pa.DataType, largest: str):
    # ASCII digits only: Arrow's cast alone would take "0x10" and "-5".
    digits = pc.ascii_is_decimal(values)
    if pc.all(digits).as_py() is not False:
        try:
            return pc.cast(values, type_), None
        except pa.ArrowInvalid:
            pass  # too large for the column: find which rows below
    # Fits the column exactly when the cast does: leading zeros aside, fewer digits than the largest
    # value, or as many and not above it (digit strings of one length compare like their numbers).
    significant = pc.utf8_ltrim(values, characters="0")
    length = pc.utf8_length(significant)
    fits = pc.or_(
        pc.less(length, _arrow(np.array([len(largest)], np.int32), pa.int32())[0]),
        pc.and_(
            pc.equal(length, _arrow(np.array([len(largest)], np.int32), pa.int32())[0]),
            pc.less_equal(significant, _strings(largest)[0]),
        ),
    )
    bad = _bad(values, pc.and_(digits, fits))
    safe = pc.if_else(_bools(bad), pa.scalar(None, pa.string()), values)
    return pc.cast(safe, type_), bad


def _bad(values, ok) -> np.ndarray:
    """Rows whose value is present but not ok."""
    present = pc.is_valid(values)
    return _mask(pc.and_kleene(present, pc.invert(pc.fill_null(ok, False))))


def _within_years(dates, bad: np.ndarray | None):
    """Dates outside FIRST_YEAR..LAST_YEAR (year 0000 would reach PostgreSQL as 1 BC) are bad too."""
    days = pc.cast(dates, pa.int32())  # days since 1970-01-01: Python's date cannot hold year 0
    bounds = pc.min_max(days).as_py()
    if bounds["min"] is None or (bounds["min"] >= FIRST_DAY and bounds["max"] <= LAST_DAY):
        return dates, bad
    outside = _mask(pc.or_(pc.less(days, _day(FIRST_DAY)), pc.greater(days, _day(LAST_DAY))))
    bad = outside if bad is None else bad | outside
    return pc.if_else(_bools(outside), pa.scalar(None, pa.date32()), dates), bad


def _day(day: int):
    return _arrow(np.array([day], np.int32), pa.int32())[0]


def _dates_row_by_row(values) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Which dates are bad, for a chunk that has some: a date is real only if it prints back the same."""
    shaped = pc.match_substring_regex(values, ISO_DATE)
    stamps = pc.strptime(
        pc.if_else(shaped, values, pa.scalar(None, pa.string())),
        format="%Y-%m-%d",
        unit="s",
        error_is_null=True,
    )
    # strptime rolls 2020-02-30 over to 2020-03-01: the round trip catches it.
    real = pc.fill_null(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), values), False)
    return pc.cast(pc.if_else(real, stamps, pa.scalar(None, stamps.type)), pa.date32()), _bad(values, real)


def _age_in_years(age: pa.Array, unit: pa.Array) -> pa.Array:
    """`edad` counts months when `edad_años_meses` says Meses: keep whole years."""
    in_months = pc.fill_null(pc.equal(unit, MONTHS), FALSE)
    return pc.if_else(in_months, pc.divide(age, MONTHS_A_YEAR), age)


def _mask(bad) -> np.ndarray:
    return pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
