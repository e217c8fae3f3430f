"""Stream the registry's CSV out of its zip (or a bare .csv) as UTF-8 chunks that end on a record.

Nothing here holds more than one chunk of the file in memory.
"""

import codecs
import collections
import io
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
from isal import isal_zlib

from covid_pipeline.ingest.errors import Reject, SourceFormatError
from covid_pipeline.ingest.registry_format import CASES_MEMBER, SOURCE_NAMES

CHUNK_BYTES = 8 * 1024 * 1024
# No real record comes near this: past it, an unbalanced quote is a broken line, not a long field.
MAX_RECORD_BYTES = 1024 * 1024
# Of a line set aside for its length, the start kept in covid.rejected_cases to show what it was.
KEPT_OF_LONG_LINE = 1024

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
MAGIC_BYTES = (
    (b"\x1f\x8b", "a gzip file (decompress it with gunzip first)"),
    (b"BZh", "a bzip2 file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"%PDF", "a PDF document"),
)
# A local file header, or the end record of an empty archive: the first bytes of every zip the registry ships in.
ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")
HEAD_BYTES = 64 * 1024  # far more than the header line (about 600 bytes)


@contextmanager
def open_csv_member(
    path: str | Path,
    member_suffix: str = ".csv",
    file_name: str | None = None,
    member_name: str = CASES_MEMBER,
    log: Callable[[str], None] = lambda message: None,
) -> Iterator[tuple[BinaryIO, str]]:
    """Open a .csv, or the CSV inside a .zip, as a binary stream (decompressed as it is read).

    Yields the stream and a display name such as ``Covid19Casos.zip!Covid19Casos.csv``, built on
    `file_name` (the name the user knows, e.g. the published one) or else the path's own name.
    Inside a zip, the member called `member_name` is read, else the only CSV (logged).
    """
    path = Path(path)
    name = file_name or path.name
    if not _is_zip(path):
        with open(path, "rb") as stream:
            yield stream, name
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceFormatError(f"{name}: not a readable zip archive ({exc})") from exc
    with archive:
        member = _choose_member(archive, name, member_suffix, member_name, log)
        if member.flag_bits & 0x1:
            raise SourceFormatError(
                f"{name}: {member.filename} inside the zip is encrypted (password-protected); the registry is "
                "published without a password. Fetch the official publication again."
            )
        name = f"{name}!{member.filename}"
        if _InflatedMember.can_read(member):
            with _InflatedMember(path, member, name) as stream:
                yield stream, name
            return
        try:
            opened = archive.open(member)
        except (NotImplementedError, RuntimeError, zipfile.BadZipFile) as exc:
            raise SourceFormatError(f"{name}: cannot be extracted ({exc})") from exc
        with opened as stream:
            yield _ZipErrorsAsFormatErrors(stream, name, member.file_size), name


def _is_zip(path: Path) -> bool:
    """A zip archive starts with a zip record. zipfile.is_zipfile alone looks for the end-of-archive record's
    signature (PK 05 06) near the end: a CSV with those four bytes in a field would pass for a broken zip."""
    with open(path, "rb") as handle:
        start = handle.read(4)
    return start in ZIP_STARTS and zipfile.is_zipfile(path)


def _choose_member(archive: zipfile.ZipFile, name: str, suffix: str, wanted: str, log) -> zipfile.ZipInfo:
    """The registry's own member; else the only CSV. macOS's `__MACOSX/` copies and dot-files never count."""
    members = [
        m
        for m in archive.infolist()
        if not m.is_dir()
        and not m.filename.startswith("__MACOSX/")
        and not Path(m.filename).name.startswith(".")
        and m.filename.lower().endswith(suffix)
    ]
    named = [m for m in members if Path(m.filename).name.lower() == wanted.lower()]
    if len(named) == 1:
        return named[0]
    if len(members) == 1 and not named:
        log(f"{name}: no {wanted} inside the zip; reading its only CSV, {members[0].filename}")
        return members[0]
    names = ", ".join(m.filename for m in archive.infolist()) or "nothing"
    raise SourceFormatError(
        f"{name}: expected {wanted} (or a single {suffix} file) inside the zip, found: {names}"
    )


def refuse_foreign_format(head: bytes, name: str) -> None:
    """Refuse, by its first bytes, a file that is not CSV text at all, saying what it is."""
    what = sniff(head)
    if what:
        raise SourceFormatError(
            f"{name}: this is {what}, not the registry's CSV. Fetch the official publication again."
        )
    if head.startswith(b"PK\x03\x04"):
        raise SourceFormatError(
            f"{name}: the zip archive is truncated or corrupt (no central directory). "
            "The download was probably cut short: fetch it again (re-run raw_csv_s3)."
        )


def sniff(head: bytes) -> str | None:
    """What a file is, from its magic bytes, when it is something other than text or zip."""
    for magic, what in MAGIC_BYTES:
        if head.startswith(magic):
            return what
    text = head[:1024].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "an HTML/XML page (an error or login page served in place of the file?)"
    return None


class _ZipErrorsAsFormatErrors(io.RawIOBase):
    """Turns zlib/CRC failures of a damaged archive into a SourceFormatError naming the file."""

    def __init__(self, stream: BinaryIO, name: str, size: int):
        self._stream, self._name = stream, name
        self.size = size  # uncompressed bytes (how far a reader has come: the load's progress)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise SourceFormatError(f"{self._name}: the archive is damaged or truncated ({exc})") from exc

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _InflatedMember(io.RawIOBase):
    """A deflated zip member, inflated with ISA-L (2.5 times as fast as zlib) and CRC-checked like zipfile.

    The member's place, sizes and CRC come from the archive's central directory.
    """

    INPUT_BYTES = 1 << 20

    @staticmethod
    def can_read(info: zipfile.ZipInfo) -> bool:
        return info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1  # not encrypted

    def __init__(self, path: Path, info: zipfile.ZipInfo, name: str):
        self._name, self._expected_crc = name, info.CRC
        self.size = info.file_size  # uncompressed bytes (how far a reader has come: the load's progress)
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close(), like the stream it is)
        self._file.seek(info.header_offset)
        header = self._file.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            self._file.close()
            raise SourceFormatError(
                f"{name}: the archive is damaged (no local header where its directory says)"
            )
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self._file.seek(info.header_offset + 30 + name_length + extra_length)
        self._left = info.compress_size
        self._inflater = isal_zlib.decompressobj(-15)  # raw deflate, as zip stores it
        self._crc = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        limit = size if size is not None and size >= 0 else 1 << 62
        parts, got = [], 0
        try:
            while got < limit and not self._inflater.eof:
                # Input left over from the last call first; with none left, ISA-L may still hold output.
                data = self._inflater.unconsumed_tail or self._compressed()
                parts.append(self._inflater.decompress(data, limit - got))
                got += len(parts[-1])
                if not data and not parts[-1]:
                    raise self._damaged("the compressed data ends early")
        except isal_zlib.error as exc:
            raise self._damaged(str(exc)) from exc
        data = b"".join(parts)
        self._crc = isal_zlib.crc32(data, self._crc)
        if self._inflater.eof and self._crc != self._expected_crc:
            raise self._damaged("CRC mismatch")
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _compressed(self) -> bytes:
        data = self._file.read(min(self._left, self.INPUT_BYTES))
        self._left -= len(data)
        return data

    def _damaged(self, why: str) -> SourceFormatError:
        return SourceFormatError(f"{self._name}: the archive is damaged or truncated ({why})")

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass
class Chunk:
    """Whole records of the file: `data` is UTF-8 text ending with a newline; `first_line` is 1-based.

    `rejects` are lines the reader set aside before `data` (a line too long to be a record), each counted
    as a row read and rejected.
    """

    data: bytes
    first_line: int
    rejects: list[Reject] = field(default_factory=list)


# A transcoded file's bytes that do not decode (a lone UTF-16 surrogate, a file cut inside a character) become
# this lone surrogate, which no decoded text can hold, written out as the invalid UTF-8 ED B3 BF: validate()
# finds each one, rejects its row, and names the bytes and their offset in the file, noted while decoding.
MARK = "\udcff"
MARK_BYTES = MARK.encode("utf-8", "surrogatepass")
_DECODING = threading.local()


def _note_undecodable(exc: UnicodeDecodeError) -> tuple[str, int]:
    marks = getattr(_DECODING, "marks", None)
    if marks is None:
        raise exc
    marks.append((exc.start, exc.object[exc.start : exc.end], exc.reason))
    return MARK, exc.end


codecs.register_error("covid_pipeline.undecodable", _note_undecodable)


@dataclass(frozen=True)
class Undecodable:
    offset: int  # in the file, from its first byte (BOM included)
    data: bytes
    reason: str  # the codec's: "illegal UTF-16 surrogate", "truncated data", ...


class Utf8Stream:
    """Reads a CSV byte stream as UTF-8, whatever the registry was published in.

    - UTF-16 with a BOM (the mid-2020 publications) is transcoded.
    - A UTF-8 BOM is dropped (a repeated BOM too: it is never content).
    - Text that was UTF-8-encoded twice (``AÃ±os``) is detected from the header and repaired.
    - A file re-saved as Windows-1252/Latin-1 is recognised by its header (``edad_a\xf1os_meses``, the
      ñ as one byte) and transcoded.
    - In a transcoded file, bytes that do not decode (a lone UTF-16 surrogate, the file cut inside a
      character) reject the row that holds them, naming their offset in the file, line and column.
    - Anything else must be valid UTF-8: the first invalid byte is reported with its line and column
      (a UTF-8 file with a stray Latin-1 byte is refused, not guessed at).
    """

    def __init__(self, raw: BinaryIO, name: str):
        self.name = name
        self._raw = raw
        self._decoder = None
        self._encoding = "utf-8"
        self._repair_double_encoding = False
        self._pending = b""
        self._started = False
        self._offset = 0  # bytes of the file handed to the decoder so far
        self._undecodable: collections.deque[Undecodable] = collections.deque()

    @property
    def encoding(self) -> str:
        return self._encoding + (" (double-encoded, repaired)" if self._repair_double_encoding else "")

    def _start(self) -> None:
        head = self._raw.read(HEAD_BYTES)  # the BOM, or the whole header line
        refuse_foreign_format(head, self.name)
        if head.startswith(UTF16_BOMS):
            self._transcode_from("utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be")
            self._offset = 2
            self._pending = self._transcode(head[2:], final=False)
        elif utf16 := _utf16_without_bom(head):
            self._transcode_from(utf16)
            self._pending = self._transcode(head, final=False)
        elif head.startswith(codecs.BOM_UTF8):
            self._encoding = "utf-8-sig"
            self._pending = head[3:]
        elif _is_single_byte_header(head.split(b"\n", 1)[0]):
            self._transcode_from("cp1252")
            self._encoding = "windows-1252"
            self._pending = self._transcode(head, final=False)
        else:
            self._pending = head
        while self._pending.startswith(codecs.BOM_UTF8):  # a BOM written twice (a re-save that added one)
            self._pending = self._pending[3:]
        first_line = self._pending.split(b"\n", 1)[0]
        if b"\r" in first_line.rstrip(b"\r"):
            raise SourceFormatError(
                f"{self.name}, line 1: lines end with a lone CR (old Mac line endings), which the registry "
                "never uses. Convert them to LF (tr '\\r' '\\n' < file > fixed) or fetch the publication again."
            )
        self._started = True

    def _transcode_from(self, encoding: str) -> None:
        self._encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="covid_pipeline.undecodable")

    def _transcode(self, data: bytes, final: bool) -> bytes:
        """`data` (the next bytes of the file) as UTF-8, undecodable bytes marked and noted."""
        start = self._offset - len(self._decoder.getstate()[0])  # the decoder may hold a partial character
        _DECODING.marks = marks = []
        try:
            text = self._decoder.decode(data, final=final)
        finally:
            _DECODING.marks = None
        self._offset += len(data)
        self._undecodable.extend(Undecodable(start + at, bad, why) for at, bad, why in marks)
        return text.encode("utf-8", "surrogatepass")

    def read(self, size: int) -> bytes:
        """Up to `size` UTF-8 bytes (may cut a character in two: callers cut on newlines)."""
        if not self._started:
            self._start()
        data = self._raw.read(size)
        if self._decoder is not None:
            data = self._transcode(data, final=not data)
        if self._pending:
            data, self._pending = self._pending + data, b""
        return data

    def set_double_encoding_repair(self) -> None:
        self._repair_double_encoding = True

    def validate(self, chunk: Chunk) -> Chunk:
        """Check (and if needed repair) one chunk of whole records; returns it as clean UTF-8, with the rows
        that hold undecodable bytes of a transcoded file rejected (their lines left empty)."""
        if self._undecodable and MARK_BYTES in chunk.data:
            chunk = self._reject_undecodable(chunk)
        return Chunk(self._valid_utf8(chunk), chunk.first_line, chunk.rejects)

    def _reject_undecodable(self, chunk: Chunk) -> Chunk:
        data, rejects, emptied = chunk.data, list(chunk.rejects), {}
        position = 0
        while (at := data.find(MARK_BYTES, position)) >= 0:
            position = at + len(MARK_BYTES)
            bad = self._undecodable.popleft()  # the marks come in the order they were noted
            line, column = position_of(data, at)
            what = (
                f"bytes {bad.data.hex(' ')} at byte {bad.offset:,} of the file are not {self._encoding} "
                f"({_undecodable_reason(bad.reason)})"
            )
            if chunk.first_line + line - 1 == 1:
                raise SourceFormatError(
                    f"{self.name}, line 1, column {column}: {what}, in the header. Fetch the publication again."
                )
            start, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at)
            if start in emptied:
                continue  # another mark on a line already rejected
            emptied[start] = end
            field = csv_field_at(data, at)
            raw = data[start:end].decode("utf-8", "surrogatepass").replace(MARK, "\ufffd").rstrip("\r")
            name = SOURCE_NAMES[field] if field < len(SOURCE_NAMES) else None
            rejects.append(Reject(chunk.first_line + line - 1, name, f"column {column}: {what}", raw))
        # The rejected lines stay, empty, so the lines after them keep their numbers.
        kept, previous = [], 0
        for start, end in emptied.items():
            kept.append(data[previous:start])
            previous = end
        kept.append(data[previous:])
        return Chunk(b"".join(kept), chunk.first_line, rejects)

    def _valid_utf8(self, chunk: Chunk) -> bytes:
        if not self._repair_double_encoding and is_utf8(chunk.data):
            return chunk.data
        try:
            text = chunk.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = position_of(chunk.data, exc.start)
            field = csv_field_at(chunk.data, exc.start)
            raise SourceFormatError(
                f"{self.name}, line {chunk.first_line + line - 1}, column {column} (CSV field {field + 1}"
                f"{', ' + SOURCE_NAMES[field] if field < len(SOURCE_NAMES) else ''}): byte "
                f"0x{chunk.data[exc.start]:02x} is not valid UTF-8, though the file starts as UTF-8: part of it was "
                "probably re-saved as Latin-1/Windows-1252. Fetch the official publication again, or repair "
                "that part (iconv -f latin1 -t utf-8)."
            ) from exc
        if not self._repair_double_encoding:
            return chunk.data
        return repair_double_encoding(text).encode("utf-8")


def _undecodable_reason(reason: str) -> str:
    if reason == "truncated data":
        return "the file ends inside a character: it was cut short"
    if "surrogate" in reason:
        return "a lone surrogate, half of a character"
    return reason


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 without its BOM: the header's ASCII letters alternate with NUL bytes."""
    sample = head[:200]
    if len(sample) < 40 or sample.count(0) < len(sample) // 3:
        return None
    if sample[1::2].count(0) > len(sample) // 3:
        return "utf-16-le"
    if sample[0::2].count(0) > len(sample) // 3:
        return "utf-16-be"
    return None


def _is_single_byte_header(header: bytes) -> bool:
    """True for the registry's header written in Windows-1252/Latin-1 rather than UTF-8."""
    try:
        header.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return "edad_años_meses".encode("cp1252") in header


def is_utf8(data: bytes) -> bool:
    """Arrow's UTF-8 check, several times faster than decoding into a str (which only finds the place)."""
    offsets = np.array([0, len(data)], dtype=np.int64)
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def repair_double_encoding(text: str) -> str:
    """Undo UTF-8 that was encoded a second time (`AÃ±os` → `Años`), line by line where needed."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        # Some lines are clean: repair each line on its own and keep the clean ones.
        return "".join(_undouble(line) for line in text.splitlines(keepends=True))


def _undouble(line: str) -> str:
    try:
        return line.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return line


def looks_double_encoded(header: str) -> bool:
    """The registry header has `edad_años_meses`; UTF-8 read as Latin-1 and re-encoded gives `aÃ±os`."""
    return "Ã" in header and _undouble(header) != header


def csv_field_at(data: bytes, offset: int) -> int:
    """0-based index of the CSV field holding byte `offset` (separators inside quotes don't count)."""
    line = data[data.rfind(b"\n", 0, offset) + 1 : offset]
    fields, quoted = 0, False
    for byte in line:
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            fields += 1
    return fields


def position_of(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column in characters) of byte `offset` within `data`."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def iter_record_chunks(stream: Utf8Stream, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Cut the stream into chunks of whole records (never inside a quoted field), numbering lines.

    The first chunk starts at line 1 (the header). A final line without a newline gets one. A line still
    without its end past MAX_RECORD_BYTES is set aside as it is read (a chunk with no data and its reject),
    so memory stays at a block or two, however long the line.
    """
    carry = b""
    next_line = 1
    while True:
        block = stream.read(chunk_bytes)
        data = carry + block
        if not block:
            if data:
                if not data.endswith(b"\n"):
                    data += b"\n"
                yield Chunk(data, next_line)
            return
        cut = _last_record_end(data)
        if cut <= 0 and len(data) >= MAX_RECORD_BYTES:
            cut = data.rfind(b"\n") + 1  # a stray quote: cut on lines, the cleaner re-reads them one by one
            if cut <= 0:  # one line, longer than any record, and its end not read yet
                kept, length = data[:KEPT_OF_LONG_LINE], len(data)
                data = block = b""  # hold none of it while reading past the rest
                reject, carry = _set_aside_long_line(stream, kept, length, next_line)
                next_line += 1
                yield Chunk(b"", next_line, [reject])
                continue
        if cut <= 0:
            carry = data  # a record longer than the block: read more
            continue
        chunk, carry = data[:cut], data[cut:]
        yield Chunk(chunk, next_line)
        next_line += count_byte(chunk, b"\n")


def _set_aside_long_line(stream: Utf8Stream, kept: bytes, length: int, line: int) -> tuple[Reject, bytes]:
    """Read past the line whose first `length` bytes were read (no newline among them; `kept` their start),
    a record's worth at a time; returns its reject and what follows its end."""
    if line == 1:
        raise SourceFormatError(
            f"{stream.name}, line 1: over {MAX_RECORD_BYTES:,} bytes without a line end where the header should "
            "be: this is not the registry's CSV. Fetch the official publication again."
        )
    rest = b""
    while block := stream.read(MAX_RECORD_BYTES):
        newline = block.find(b"\n")
        if newline >= 0:
            length, rest = length + newline, block[newline + 1 :]
            break
        length += len(block)
    shown = kept.decode("utf-8", errors="replace")
    return (
        Reject(
            line,
            None,
            f"the line is {length:,} bytes long without a record end: no registry record is longer than "
            f"{MAX_RECORD_BYTES // (1 << 20)} MB (its first {len(kept):,} bytes are kept here)",
            f"{shown}… [{length - len(kept):,} more bytes]",
        ),
        rest,
    )


def _last_record_end(data: bytes) -> int:
    """Offset just past the last newline that is outside quotes (an even number of quotes before it)."""
    quotes_before = count_byte(data, b'"')
    position = len(data)
    while True:
        newline = data.rfind(b"\n", 0, position)
        if newline < 0:
            return 0
        quotes_before -= data.count(b'"', newline, position)
        if quotes_before % 2 == 0:
            return newline + 1
        position = newline


def count_byte(data: bytes, byte: bytes) -> int:
    """How many times one byte occurs: NumPy's compare-and-count is five times faster than bytes.count."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord(byte)))
