"""Turn chunks of registry CSV into typed Arrow tables, setting aside the rows that break the contract.

Contract: a row is loaded only if it has 25 fields, an integer `id_evento_caso`, dates that are real
`YYYY-MM-DD` dates or empty, integer codes, SI/NO flags and a known age unit. Everything else goes to
the rejects with its line number, raw text and the column at fault. Empty fields become NULL.
"""

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.reader import Chunk
from covid_pipeline.ingest.registry_format import REGISTRY_COLUMNS, SOURCE_NAMES, TARGET_NAMES, Kind

N_FIELDS = len(REGISTRY_COLUMNS)
NEWLINE, QUOTE, COMMA = ord("\n"), ord('"'), ord(",")

ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
FLAGS = {"SI": True, "NO": False}
MONTHS_UNIT, YEARS_UNIT = "Meses", "Años"
# Widest integers that fit the target columns (bigint for the id, integer for codes and ages).
MAX_DIGITS = {Kind.ID: 18, Kind.INT: 9}


# The Arrow values cleaning compares with are built from raw buffers: converting a Python object
# (pa.array, pa.scalar, a str or int given to pyarrow.compute) makes pyarrow import pandas on first use,
# a quarter of a second per process that loading never needs.
def _arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A NumPy array of fixed-width numbers, as Arrow, without converting Python objects."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def _strings(*values: str) -> pa.Array:
    data = [value.encode() for value in values]
    offsets = np.cumsum([0, *map(len, data)], dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


FLAG_VALUES, AGE_UNITS = _strings(*FLAGS), _strings(YEARS_UNIT, MONTHS_UNIT)
YES, MONTHS = FLAG_VALUES[0], AGE_UNITS[1]
FALSE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(np.zeros(1, np.uint8))])[0]
MONTHS_A_YEAR = _arrow(np.array([12], np.int32), pa.int32())[0]


@dataclass
class Reject:
    line_number: int
    column_name: str | None
    reason: str
    raw_line: str


@dataclass
class CleanChunk:
    table: pa.Table  # typed, TARGET_NAMES + source_line
    rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0


def check_header(header_line: bytes, file_name: str) -> None:
    """Fail before anything is written if the columns are not the registry's 25, in order."""
    text = header_line.decode("utf-8").rstrip("\r\n")
    found = next(csv.reader([text]))
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
        f"{file_name}, line 1: the header does not match the registry format ({'; '.join(details)}).\n"
        f"Expected {N_FIELDS} columns: {', '.join(expected)}\n"
        f"Found {len(found)} columns: {', '.join(found)}\n"
        "Nothing was loaded. If the Ministry changed the format, update covid_pipeline/ingest/registry_format.py."
    )


def clean_chunk(chunk: Chunk) -> CleanChunk:
    """Parse and type one chunk of whole records (the header already removed)."""
    lines = _Lines(chunk.data)
    if lines.has_multiline_records():
        table, line_numbers, rejects = _parse_slowly(chunk)
    else:
        table, line_numbers, rejects = _parse_fast(chunk, lines)
    typed, more_rejects = _type_columns(table, line_numbers, chunk, lines)
    return CleanChunk(typed, rejects + more_rejects, rows_read=len(line_numbers) + len(rejects))


class _Lines:
    """Physical lines of a chunk, found with NumPy rather than a Python loop."""

    def __init__(self, data: bytes):
        self.data = data
        self._buffer = buffer = np.frombuffer(data, dtype=np.uint8)
        self.ends = np.flatnonzero(buffer == NEWLINE)  # index of each line's newline
        self.starts = np.concatenate(([0], self.ends[:-1] + 1)).astype(np.int64)
        self.odd_quotes = self._per_line(buffer == QUOTE, np.bitwise_xor)
        lengths = self.ends - self.starts
        carriage = np.zeros(len(lengths), dtype=bool)
        nonempty = lengths > 0
        carriage[nonempty] = buffer[self.ends[nonempty] - 1] == ord("\r")
        self.blank = (lengths - carriage) == 0

    def _per_line(self, mask: np.ndarray, ufunc=np.add) -> np.ndarray:
        """`mask` summed line by line (with XOR: its parity, twice as fast as a sum)."""
        if not len(self.starts):
            return np.zeros(0, dtype=np.int64)
        if ufunc is np.bitwise_xor:
            return np.bitwise_xor.reduceat(mask.view(np.uint8), self.starts)
        # Sums in uint16 may wrap on absurd lines; only "exactly 24" is read from them.
        return np.add.reduceat(mask.view(np.uint8), self.starts, dtype=np.uint16).astype(np.int64)

    def has_multiline_records(self) -> bool:
        return bool(np.any(self.odd_quotes))

    def field_counts(self) -> np.ndarray:
        """Fields per line. Commas are counted as they come; only when a line's count is off are
        the commas inside quoted fields worked out (Arrow re-checks every row it parses anyway)."""
        commas = self._per_line(self._buffer == COMMA)
        if np.all((commas == N_FIELDS - 1) | self.blank):
            return commas + 1
        # Quote parity before each byte tells whether a comma is inside a quoted field.
        outside = np.bitwise_xor.accumulate((self._buffer == QUOTE).view(np.uint8)) == 0
        return self._per_line((self._buffer == COMMA) & outside) + 1

    def text(self, index: int) -> str:
        raw = self.data[self.starts[index] : self.ends[index]]
        return raw.decode("utf-8", errors="replace").rstrip("\r")


class _ArrowDisagrees(Exception):
    """Arrow found a row with another field count than ours: the chunk needs the exact reader."""


def _parse_fast(chunk: Chunk, lines: _Lines) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Every record is one line: parse the good lines with Arrow's CSV reader.

    Usually every line is a good record: Arrow checks each row's field count as it parses, so a chunk
    that comes out as one row per line needs no more. Otherwise the fields are counted with NumPy,
    the wrong lines set aside and the rest parsed again.
    """
    if not lines.blank.any():
        try:
            table = _read_strings(chunk.data)
        except _ArrowDisagrees:
            table = None
        if table is not None and table.num_rows == len(lines.starts):
            return table, chunk.first_line + np.arange(table.num_rows), []
    fields = lines.field_counts()
    wrong = ~lines.blank & (fields != N_FIELDS)
    rejects = [
        Reject(
            chunk.first_line + int(i),
            None,
            f"expected {N_FIELDS} fields, found {int(fields[i])}",
            lines.text(int(i)),
        )
        for i in np.flatnonzero(wrong)
    ]
    keep = ~lines.blank & ~wrong
    data = chunk.data
    if wrong.any():
        data = b"".join(
            chunk.data[s : e + 1] for s, e in zip(lines.starts[keep], lines.ends[keep], strict=True)
        )
    line_numbers = chunk.first_line + np.flatnonzero(keep)
    try:
        table = _read_strings(data)
    except _ArrowDisagrees:
        return _parse_slowly(chunk)
    if table.num_rows != len(line_numbers):
        # Quoting Arrow reads differently from our count (e.g. a stray quote): take the exact path.
        return _parse_slowly(chunk)
    return table, line_numbers, rejects


def _read_strings(data: bytes) -> pa.Table:
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
    if disagreements:
        raise _ArrowDisagrees(disagreements[0])
    return table


def _parse_slowly(chunk: Chunk) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Python's csv module, for chunks with quoted newlines: exact, slower, rare."""
    text = chunk.data.decode("utf-8")
    physical = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: list[list[str | None]] = [[] for _ in range(N_FIELDS)]
    line_numbers, rejects = [], []
    previous_end = 0

    def accept(row: list[str], index: int) -> None:
        for values, value in zip(columns, row, strict=True):
            values.append(value or None)
        line_numbers.append(chunk.first_line + index)

    def reject(row: list[str], index: int, raw: str) -> None:
        reason = f"expected {N_FIELDS} fields, found {len(row)}"
        rejects.append(Reject(chunk.first_line + index, None, reason, raw.rstrip("\r\n")))

    for row in reader:
        start, previous_end = previous_end, reader.line_num
        if not row or row == [""]:
            continue
        if len(row) == N_FIELDS:
            accept(row, start)
        elif previous_end - start == 1:
            reject(row, start, physical[start])
        else:
            # A broken quote (e.g. a line cut short) swallowed the lines after it: read each on its own.
            for index in range(start, previous_end):
                alone = next(csv.reader([physical[index]]), [])
                if len(alone) == N_FIELDS:
                    accept(alone, index)
                elif alone and alone != [""]:
                    reject(alone, index, physical[index])
    table = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(TARGET_NAMES, columns, strict=True)}
    )
    return table, np.asarray(line_numbers, dtype=np.int64), rejects


def _type_columns(
    table: pa.Table, line_numbers: np.ndarray, chunk: Chunk, lines: _Lines
) -> tuple[pa.Table, list[Reject]]:
    typed: dict[str, pa.Array] = {}
    reason = np.full(table.num_rows, None, dtype=object)  # first problem found in each row
    for column in REGISTRY_COLUMNS:
        values = table.column(column.target)
        converted, bad = _convert(column.kind, values)
        typed[column.target] = converted
        if bad is not None:
            for i in np.flatnonzero(bad & (reason == None)):  # noqa: E711 (elementwise)
                reason[i] = (column.source, _describe(column, values[int(i)].as_py()))
    typed["age_years"] = _age_in_years(typed["age_years"], typed["age_unit"])
    typed["source_line"] = _arrow(line_numbers.astype(np.int64), pa.int64())
    result = pa.table(typed)
    rejected = np.flatnonzero(reason != None)  # noqa: E711
    if not len(rejected):
        return result, []
    rejects = []
    for i in rejected:
        line = int(line_numbers[i])
        column_name, why = reason[i]
        rejects.append(Reject(line, column_name, why, lines.text(line - chunk.first_line)))
    keep = pa.array(reason == None)  # noqa: E711
    return result.filter(keep), rejects


def _describe(column, value) -> str:
    shown = "empty" if value is None else repr(value)
    expected = {
        Kind.ID: "an integer id",
        Kind.INT: "an integer",
        Kind.DATE: "a date YYYY-MM-DD",
        Kind.FLAG: "SI or NO",
        Kind.AGE_UNIT: f"{YEARS_UNIT} or {MONTHS_UNIT}",
    }[column.kind]
    return f"{column.source}: expected {expected}, found {shown}"


def _convert(kind: Kind, values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """The typed column and a mask of rows whose value does not fit (None when all fit).

    Each kind tries the whole column at once first (the usual case: every value is good) and
    works out which rows are bad only when that fails.
    """
    if kind is Kind.TEXT:
        return values, None
    if kind in (Kind.ID, Kind.INT):
        return _integers(
            values, pa.int64() if kind is Kind.ID else pa.int32(), MAX_DIGITS[kind], kind is Kind.ID
        )
    if kind is Kind.DATE:
        try:
            # Arrow's cast is strict (YYYY-MM-DD, real calendar dates) and fast.
            return pc.cast(values, pa.date32()), None
        except pa.ArrowInvalid:
            return _dates_row_by_row(values)
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


def _integers(values, type_: pa.DataType, max_digits: int, required: bool):
    # ASCII digits only: Arrow's cast alone would take "0x10" and "-5".
    digits = pc.ascii_is_decimal(values)
    if pc.all(digits).as_py() is not False and not (required and values.null_count):
        try:
            return pc.cast(values, type_), None
        except pa.ArrowInvalid:
            pass  # too large for the column: find which rows below
    ok = pc.and_(digits, pc.less_equal(pc.utf8_length(values), max_digits))
    bad = _bad(values, ok, required)
    safe = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), values)
    return pc.cast(safe, type_), bad


def _bad(values, ok, required: bool = False) -> np.ndarray:
    """Rows whose value is present but not ok (or missing, when the column is required)."""
    present = pc.is_valid(values)
    bad = pc.and_kleene(present, pc.invert(pc.fill_null(ok, False)))
    if required:
        bad = pc.or_(bad, pc.invert(present))
    return _mask(bad)


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
