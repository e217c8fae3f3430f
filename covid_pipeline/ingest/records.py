"""Split a chunk of registry CSV into records, strictly, so a broken row is rejected alone.

SISA writes every record on one line, non-empty fields quoted. Such a line is handed to Arrow's fast
reader as it is (`Lines.simple`). Every other line (a quoted newline, a stray quote, a NUL, a lone CR,
a wrong field count) is read here by RFC 4180's grammar, with no leniency: a field is either quoted
(`""` inside for a quote) or holds no quote at all, and a closing quote is followed by a comma or the
end of the line. Where a record breaks that grammar it is rejected, and reading resumes at the next
record: the broken line alone when the line after it reads as a record of its own (a line cut short,
a stray opening quote), else the whole broken record with every physical line it spans.
"""

import re
from dataclasses import dataclass

import numpy as np

from covid_pipeline.ingest.reader import MAX_RECORD_BYTES
from covid_pipeline.ingest.registry_format import SOURCE_NAMES

N_FIELDS = len(SOURCE_NAMES)
NEWLINE, QUOTE, COMMA, CR, NUL = ord("\n"), ord('"'), ord(","), ord("\r"), 0

MAY_PRECEDE_OPENING = np.zeros(256, dtype=bool)
MAY_PRECEDE_OPENING[[COMMA, NEWLINE, QUOTE]] = True  # a quote before: the second of an escaped pair
MAY_FOLLOW_CLOSING = np.zeros(256, dtype=bool)
MAY_FOLLOW_CLOSING[[COMMA, NEWLINE, QUOTE, CR]] = True

_QUOTED = re.compile(rb'"([^"]*(?:""[^"]*)*)"')
_PLAIN = re.compile(rb'[^",\r\n]*')


class Lines:
    """Physical lines of a chunk (which ends with a newline), found with NumPy rather than a Python loop."""

    def __init__(self, data: bytes):
        self.data = data
        self.buffer = buffer = np.frombuffer(data, dtype=np.uint8)
        self.ends = np.flatnonzero(buffer == NEWLINE)  # index of each line's newline
        self.starts = np.concatenate(([0], self.ends[:-1] + 1)).astype(np.int64)
        self.quotes = buffer == QUOTE
        self.quote_offsets = np.flatnonzero(self.quotes)
        before_line = np.searchsorted(self.quote_offsets, self.starts)
        self.odd_quotes = (np.searchsorted(self.quote_offsets, self.ends) - before_line) % 2
        self._first_quote = before_line  # index in quote_offsets of each line's first quote
        lengths = self.ends - self.starts
        carriage = np.zeros(len(lengths), dtype=bool)
        nonempty = lengths > 0
        carriage[nonempty] = buffer[self.ends[nonempty] - 1] == CR
        self.blank = (lengths - carriage) == 0

    def __len__(self) -> int:
        return len(self.starts)

    def line_of(self, offset) -> np.ndarray:
        return np.searchsorted(self.ends, offset)

    def simple(self, count_fields: bool = True) -> np.ndarray:
        """Lines that are a whole, well-formed record of 25 fields on their own (what Arrow may read).

        Without `count_fields`, field counts are left to Arrow, which checks every row it parses.
        """
        buffer, odd = self.buffer, self.odd_quotes.astype(bool)
        ok = ~self.blank & ~odd & (self.ends - self.starts <= MAX_RECORD_BYTES)
        broken = [self._misplaced_quotes(odd.any())]
        # PostgreSQL's text cannot hold NUL: the strict reader rejects the row naming the column.
        if self.data.find(b"\0") >= 0:
            broken.append(np.flatnonzero(buffer == NUL))
        if self.data.find(b"\r") >= 0:  # a CR not ending its line: Arrow would take it for a line end
            carriage = np.flatnonzero(buffer == CR)
            broken.append(carriage[buffer[carriage + 1] != NEWLINE])
        for offsets in broken:
            ok[self.line_of(offsets)] = False
        if count_fields:
            ok &= self._field_counts(odd.any()) == N_FIELDS
        return ok

    def _field_counts(self, some_odd: bool) -> np.ndarray:
        """Fields per line (exact on lines with an even number of quotes when no line has an odd one;
        elsewhere only lines whose plain comma count says 25 are counted as 25)."""
        commas = self.buffer == COMMA
        counts = np.add.reduceat(commas.view(np.uint8), self.starts, dtype=np.int64) + 1
        if some_odd or np.all(counts == N_FIELDS):
            return counts  # with odd lines about, quote parity is not global: the strict reader counts
        # Quote parity before each byte tells whether a comma is inside a quoted field.
        outside = np.bitwise_xor.accumulate(self.quotes.view(np.uint8)) == 0
        return np.add.reduceat((commas & outside).view(np.uint8), self.starts, dtype=np.int64) + 1

    def _misplaced_quotes(self, some_odd: bool) -> np.ndarray:
        """Offsets of quotes that break the grammar on lines with an even number of quotes: an opening
        quote not at a field's start, a closing quote followed by anything but a comma or the line end
        (`"2200000"1`, `"S"I`, `"La "Matanza"`). A quote next to another is an escaped quote."""
        positions = self.quote_offsets
        if not len(positions):
            return positions
        if some_odd:  # count quotes from each line's start, not the chunk's
            ordinal = np.arange(len(positions)) - self._first_quote[self.line_of(positions)]
            opening, closing = positions[ordinal % 2 == 0], positions[ordinal % 2 == 1]
        else:
            opening, closing = positions[0::2], positions[1::2]
        # The byte before an opening quote (the chunk's last, a newline, for offset 0) and the byte after
        # a closing one (the chunk ends with a newline, never with a quote), looked up in a table.
        bad_open = opening[~MAY_PRECEDE_OPENING[self.buffer[opening - 1]]]
        bad_close = closing[~MAY_FOLLOW_CLOSING[self.buffer[closing + 1]]]
        return np.concatenate((bad_open, bad_close))

    def text(self, first: int, last: int | None = None) -> str:
        """The raw text of physical lines first..last (a multi-line record whole), for the rejects."""
        raw = self.data[self.starts[first] : self.ends[first if last is None else last]]
        return raw.decode("utf-8", errors="replace").rstrip("\r")


class Broken(Exception):
    def __init__(self, offset: int, reason: str, field: int, unterminated: bool = False, spanning: int = -1):
        super().__init__(reason)
        self.offset, self.reason, self.field = offset, reason, field
        self.unterminated = unterminated  # a quote still open at the end of the chunk
        self.spanning = spanning  # the field whose quotes ran past the first line, if one did


def parse_record(data: bytes, start: int) -> tuple[list[bytes], int]:
    """The fields of the record starting at `start` and the offset just past it; raises Broken."""
    fields: list[bytes] = []
    position, spanning = start, -1
    while True:
        quoted = data[position] == QUOTE
        if quoted:
            match = _QUOTED.match(data, position)
            if match is None:
                raise Broken(len(data) - 1, "a quoted field never closes", len(fields), True, len(fields))
            fields.append(match.group(1).replace(b'""', b'"'))
            if spanning < 0 and data.find(b"\n", position, match.end()) >= 0:
                spanning = len(fields) - 1
        else:
            match = _PLAIN.match(data, position)
            fields.append(match.group(0))
        position = match.end()
        if position - start > MAX_RECORD_BYTES:
            raise Broken(position, "the record is longer than 1 MB (no registry record is)", len(fields) - 1)
        byte = data[position]
        if byte == COMMA:
            position += 1
        elif byte == NEWLINE:
            return fields, position + 1
        elif byte == CR and data[position + 1] == NEWLINE:
            return fields, position + 2
        else:
            if quoted:
                reason = "text after the field's closing quote (a stray or missing quote)"
            elif byte == QUOTE:
                reason = "a quote inside an unquoted field (a stray or missing quote)"
            else:
                reason = "a carriage return (CR) inside the line: only CRLF or LF may end a record"
            raise Broken(position, reason, len(fields) - 1, spanning=spanning)


@dataclass
class Record:
    first: int  # physical line indexes within the chunk
    last: int
    fields: list[bytes] | None  # None: rejected
    field: int | None = None  # the field at fault, for a rejected record
    reason: str = ""


def read_records(lines: Lines, suspects: np.ndarray, final: bool) -> tuple[list[Record], int | None]:
    """Read the records that start at the `suspects` lines (in order); lines in between are simple
    records. Returns the records and, when the chunk ends inside an open quote and more data follows,
    the line index where that unfinished record starts (to be read again with the next chunk)."""
    records: list[Record] = []
    free = 0  # the first line not yet consumed by a record read here
    for line in suspects.tolist():
        if line < free:
            continue
        try:
            fields, end = parse_record(lines.data, int(lines.starts[line]))
        except Broken as broken:
            if broken.unterminated and not final and len(lines.data) - lines.starts[line] <= MAX_RECORD_BYTES:
                return records, line
            records.append(_rejected(lines, line, broken))
            free = records[-1].last + 1
            continue
        last = int(lines.line_of(end - 1))
        free = last + 1
        if len(fields) != N_FIELDS:
            records.append(Record(line, last, None, None, f"expected {N_FIELDS} fields, found {len(fields)}"))
        elif any(b"\0" in value for value in fields):
            column = next(i for i, value in enumerate(fields) if b"\0" in value)
            records.append(
                Record(line, last, None, column, "contains a NUL byte (0x00), which no registry value has")
            )
        else:
            records.append(Record(line, last, fields))
    return records, None


def _rejected(lines: Lines, line: int, broken: Broken) -> Record:
    """The broken record: its first line alone when the next line reads as a record of its own."""
    error_line = int(lines.line_of(broken.offset))
    if error_line > line and _reads_alone(lines, line + 1):
        field = broken.spanning if broken.spanning >= 0 else broken.field
        reason = f"the line ends inside the quoted field {field + 1} of {N_FIELDS}: a line cut short or a stray quote"
        return Record(line, line, None, field, reason)
    return Record(line, error_line, None, broken.field, broken.reason)


def _reads_alone(lines: Lines, line: int) -> bool:
    if line >= len(lines):
        return True  # the broken line is the chunk's last
    try:
        fields, end = parse_record(lines.data, int(lines.starts[line]))
    except Broken:
        return False
    return len(fields) == N_FIELDS and lines.line_of(end - 1) == line
