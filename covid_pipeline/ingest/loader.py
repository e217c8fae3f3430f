"""Load the registry into `covid.cases`: stream → clean → COPY into a fresh table → swap in, one transaction.

A failed or interrupted load rolls back and leaves the previous `covid.cases` untouched; readers never
see a half-loaded table. Parsing runs in a worker thread while the main thread feeds COPY, so the
database and the parser work at the same time; at most a few chunks are ever in memory. What the load
counts as it streams (ingest/profile.py) is recorded with it, for the checks.
"""

import csv
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pgpq
import psycopg
import pyarrow as pa
from psycopg import sql

from covid_pipeline.ingest.cleaning import CleanChunk, FutureDates, Reject, clean_chunk, split_header
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.gate import NO_LIMITS, GateTally, LatestLoad, LoadLimits, enforce
from covid_pipeline.ingest.profile import CasesProfile
from covid_pipeline.ingest.reader import (
    CHUNK_BYTES,
    Chunk,
    Utf8Stream,
    iter_record_chunks,
    open_csv_member,
)
from covid_pipeline.ingest.registry_format import LOADED_COLUMNS, REGISTRY_COLUMNS, Kind
from covid_pipeline.progress import INTERVAL_SECONDS, Progress, load_line, step
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.swap import swap_in

SCHEMA, TABLE, INCOMING = "covid", "cases", "cases__incoming"
DROPPED = "cases__dropped"  # the earlier occurrences of repeated ids, moved out of the loading table
SAMPLE_REJECTS = 20

# The Arrow types that match covid.cases column for column (cases_table.sql): COPY's binary format
# carries values as the server stores them, so each type must be exact (int64 is bigint, int32 integer).
ARROW_TYPES = {
    Kind.ID: pa.int64(),
    Kind.INT: pa.int32(),
    Kind.TEXT: pa.string(),
    Kind.AGE_UNIT: pa.string(),
    Kind.DATE: pa.date32(),
    Kind.FLAG: pa.bool_(),
}
COPY_SCHEMA = pa.schema(
    [(c.target, ARROW_TYPES[c.kind]) for c in REGISTRY_COLUMNS] + [("source_line", pa.int64())]
)


@dataclass
class LoadReport:
    source_name: str
    source_sha256: str
    encoding: str = "utf-8"
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicate_rows: int = 0
    last_updated: date | None = None
    seconds: float = 0.0
    skipped_unchanged: bool = False
    load_id: int | None = None
    sample_rejects: list[Reject] = field(default_factory=list)
    profile: CasesProfile = field(default_factory=CasesProfile)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


def latest_load(conn: psycopg.Connection) -> LatestLoad | None:
    """The load the current `covid.cases` came from."""
    if conn.execute("SELECT to_regclass('covid.cases') IS NULL").fetchone()[0]:
        return None
    found = conn.execute(
        "SELECT load_id, source_sha256, rows_loaded, last_updated FROM covid.loads ORDER BY load_id DESC LIMIT 1"
    ).fetchone()
    return found and LatestLoad(*found)


def load_cases(
    url: str,
    source: str | Path,
    *,
    source_sha256: str,
    source_url: str = "",
    file_name: str | None = None,
    run_id: str = "",
    force: bool = False,
    limits: LoadLimits = NO_LIMITS,
    future_dates: FutureDates | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    log: Callable[[str], None] = lambda message: None,
    progress_seconds: float = INTERVAL_SECONDS,
) -> LoadReport:
    """Load one registry file (zip or csv) and make it the current `covid.cases`.

    Raises SourceFormatError (LoadRefused when `limits` are passed) with `covid.cases` untouched. Rows
    dated in the future of their publication or of today are rejected (`future_dates`, one day of slack
    unless given).
    """
    future_dates = future_dates or FutureDates()
    started = time.time()
    with psycopg.connect(url) as conn:
        # One load at a time: a second one waits here instead of colliding on the loading table.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('covid.cases load'))")
        latest = latest_load(conn)
        if latest and latest[1] == source_sha256 and not force:
            log(f"covid.cases already holds this file (load {latest[0]}); nothing to do")
            return LoadReport(str(source), source_sha256, skipped_unchanged=True, load_id=latest[0])
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        # The commit need not wait for the WAL flush: after a crash the load is simply run again, and the
        # database comes back with the previous tables or the new ones, never a mix.
        conn.execute("SET LOCAL synchronous_commit = off")
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, INCOMING)))
        conn.execute(_sql("cases_table.sql", table=sql.Identifier(SCHEMA, INCOMING)))
        with (
            open_csv_member(source, file_name=file_name, log=log) as (raw, name),
            tempfile.TemporaryFile("w+", newline="") as spool,
        ):
            report = LoadReport(name, source_sha256)
            progress, tally = Progress(log, progress_seconds), GateTally()
            counted = CountedReader(raw)
            duplicates = _copy_records(
                conn,
                Utf8Stream(counted, name),
                counted,
                chunk_bytes,
                report,
                csv.writer(spool),
                log,
                progress,
                tally,
                future_dates,
            )
            enforce(limits, report, latest, tally)
            _finish_table(conn, duplicates, log)
            with step(log, "covid.cases swapped in, rejects kept"):
                swap_in(conn, SCHEMA, INCOMING, TABLE)
                spool.seek(0)
                _replace_rejects(conn, spool)
        with step(log, "covid.cases analyzed"):
            conn.execute("ANALYZE covid.cases")
        report.seconds = time.time() - started
        # cases_filenode: the table this load wrote (warehouse.sql says what the checks make of it)
        report.load_id = conn.execute(
            """INSERT INTO covid.loads (run_id, source_url, source_sha256, source_bytes, last_updated, rows_read,
                                        rows_loaded, rows_rejected, duplicate_rows, started_at, max_row_drop,
                                        cases_filenode)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, pg_relation_filenode('covid.cases'))
               RETURNING load_id""",
            (
                run_id,
                source_url,
                source_sha256,
                Path(source).stat().st_size,
                report.last_updated,
                report.rows_read,
                report.rows_loaded,
                report.rows_rejected,
                report.duplicate_rows,
                started,
                limits.max_row_drop,
            ),
        ).fetchone()[0]
        report.profile.write(conn, report.load_id)
        if duplicates:  # their earlier occurrences were counted as they streamed
            CasesProfile.count_out(conn, report.load_id, sql.Identifier(DROPPED))
    return report


class CountedReader:
    """The file's bytes as they are read, counted (how far the load has come), with their total."""

    def __init__(self, raw: BinaryIO):
        self._raw, self.done = raw, 0
        # a zip member's uncompressed size (reader.py), or the bare file's
        self.total = getattr(raw, "size", None) or os.fstat(raw.fileno()).st_size

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.done += len(data)
        return data


def _copy_records(
    conn,
    stream: Utf8Stream,
    counted: CountedReader,
    chunk_bytes: int,
    report: LoadReport,
    rejects_out,
    log,
    progress: Progress,
    tally: GateTally,
    future_dates: FutureDates,
) -> list[int]:
    """COPY every clean row into the loading table; returns the ids that occurred more than once."""
    seen = SeenIds()
    columns = sql.SQL(", ").join(map(sql.Identifier, LOADED_COLUMNS))
    # Binary COPY: the server reads typed values instead of parsing text (a third less of its time).
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary, FREEZE)").format(
        sql.Identifier(SCHEMA, INCOMING), columns
    )
    with conn.cursor().copy(statement) as copy:
        for cleaned, profile, copy_data in _cleaned_chunks(stream, chunk_bytes, future_dates):
            for piece in copy_data:
                copy.write(piece)
            if cleaned is None:  # the format's trailer
                continue
            table = cleaned.table
            report.rows_read += cleaned.rows_read
            report.rows_loaded += table.num_rows
            for reject in cleaned.rejects:
                # PostgreSQL's text cannot hold NUL: shown as the symbol for it (U+2400).
                raw = reject.raw_line.replace("\0", "\u2400")
                rejects_out.writerow([reject.line_number, reject.column_name, reject.reason, raw])
                if len(report.sample_rejects) < SAMPLE_REJECTS:
                    report.sample_rejects.append(reject)
            report.rows_rejected += len(cleaned.rejects)
            seen.add(_case_ids(table))
            tally.add(table)  # what the gate judges at the end of the stream
            report.profile.add(profile)
            progress.tick(
                load_line,
                report.rows_read,
                report.rows_loaded,
                report.rows_rejected,
                counted.done,
                counted.total,
            )
    # The publication's date: the most common ultima_actualizacion of the rows read (a few rows with a wrong
    # date, say 2099-12-31, must not move it).
    report.last_updated = report.profile.most_common_day("ultima_actualizacion")
    report.encoding = stream.encoding
    report.duplicate_rows = seen.duplicate_rows
    report.rows_loaded -= seen.duplicate_rows
    log(
        f"copied {report.rows_read:,} rows ({report.rows_rejected:,} rejected, {seen.duplicate_rows:,} duplicates)"
    )
    return seen.duplicate_ids()


def _cleaned_chunks(
    stream: Utf8Stream, chunk_bytes: int, future_dates: FutureDates
) -> Iterator[tuple[CleanChunk | None, CasesProfile | None, list[bytes]]]:
    """Chunks cleaned in one worker thread, counted and encoded in another, while the caller writes COPY.

    Three stages, each in its own thread, so the parser, the encoder and the database work at the same time
    (Arrow and the socket release the GIL); the caller's thread only waits on the socket.
    """
    return _threaded(
        lambda: _with_copy_data(_threaded(lambda: _clean_all(stream, chunk_bytes, future_dates), "cleaner")),
        "encoder",
    )


_END = object()


def _threaded(items: Callable[[], Iterator], name: str, waiting: int = 2) -> Iterator:
    """The items, produced in a thread of their own, at most `waiting` ahead of the caller; an exception
    raised there is raised here, in its place."""
    results: queue.Queue = queue.Queue(maxsize=waiting)
    stop = threading.Event()

    def hand_over(item) -> bool:
        """Hand `item` to the consumer, unless it has stopped (its COPY failed): then give up at once."""
        while not stop.is_set():
            try:
                results.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items():
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over(exc)

    worker = threading.Thread(target=produce, name=f"registry-{name}", daemon=True)
    worker.start()
    try:
        while (item := results.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def _with_copy_data(
    chunks: Iterator[CleanChunk],
) -> Iterator[tuple[CleanChunk | None, CasesProfile | None, list[bytes]]]:
    """Each chunk with its profile and its rows in COPY's binary format; the format's header comes with
    the first chunk, its trailer last on its own (with no chunk)."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(COPY_SCHEMA)
    header = [encoder.write_header()]
    for cleaned in chunks:
        batches = cleaned.table.cast(COPY_SCHEMA).to_batches()
        copy_data = [*header, *(encoder.write_batch(batch) for batch in batches)]
        yield cleaned, CasesProfile.of(cleaned.table), copy_data
        header = []
    yield None, None, [*header, encoder.finish()]


def _clean_all(stream: Utf8Stream, chunk_bytes: int, future_dates: FutureDates) -> Iterator[CleanChunk]:
    header_seen, tail = False, None
    for chunk, final in _with_last(iter_record_chunks(stream, chunk_bytes)):
        if not header_seen:
            chunk, header_seen = split_header(stream, chunk), True
        else:
            chunk = stream.validate(chunk)
        if tail is not None:  # a record the previous chunk could not finish
            chunk, tail = Chunk(tail.data + chunk.data, tail.first_line, chunk.rejects), None
        if chunk.data or chunk.rejects:  # (rejects alone: lines the reader set aside)
            cleaned = clean_chunk(chunk, final, future_dates)
            tail = cleaned.tail
            yield cleaned
    if not header_seen:
        raise SourceFormatError(f"{stream.name}: the file is empty (no header, no rows)")


def _with_last(chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, bool]]:
    """Each chunk, and whether it is the file's last."""
    previous = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    if previous is not None:
        yield previous, True


def _case_ids(table: pa.Table) -> np.ndarray:
    """The ids as NumPy, read from Arrow's buffer: to_numpy() would make pyarrow import pandas."""
    ids = table.column("case_id").combine_chunks()  # never null: rows without one are rejected
    return np.frombuffer(ids.buffers()[1], dtype=np.int64, count=len(ids), offset=ids.offset * 8)


def _finish_table(conn, duplicate_ids: list[int], log) -> None:
    """The earlier occurrences of repeated ids moved out (into a temporary table, kept until the commit for
    the profile to count them out), then the keys, and the trigger that notes any later change."""
    table = sql.Identifier(SCHEMA, INCOMING)
    if duplicate_ids:
        with step(log, f"earlier occurrences of {len(duplicate_ids):,} repeated ids removed"):
            # client-side binding: several statements, and the ids as a constant (see the file)
            statement = _sql("cases_dedup.sql", table=table, dropped=sql.Identifier(DROPPED))
            psycopg.ClientCursor(conn).execute(statement, {"duplicate_ids": duplicate_ids})
    with step(log, "primary key and date index built"):
        # A client-side cursor: the file holds several statements, which server-side binding refuses.
        psycopg.ClientCursor(conn).execute(
            _sql(
                "cases_keys.sql",
                table=table,
                pkey=sql.Identifier(f"{INCOMING}_pkey"),
                opened_index=sql.Identifier(f"{INCOMING}_opened_date_idx"),
            )
        )


def _replace_rejects(conn, spool) -> None:
    conn.execute("TRUNCATE covid.rejected_cases")
    statement = (
        "COPY covid.rejected_cases (line_number, column_name, reason, raw_line) FROM STDIN (FORMAT csv)"
    )
    with conn.cursor().copy(statement) as copy:
        while block := spool.read(1 << 20):
            copy.write(block)


def _sql(name: str, **identifiers) -> sql.Composed:
    return sql.SQL(read_sql("covid_pipeline.assets.sql", name)).format(**identifiers)


class SeenIds:
    """Which case ids have been seen, in one bit per possible id value (ids are dense integers).

    Memory follows the largest id, not the number of rows (5 MB for ids up to 40 million); ids beyond the
    dense range go to a set.
    """

    DENSE_LIMIT = 1 << 31

    def __init__(self):
        self._bits = np.zeros(1 << 17, dtype=np.uint8)
        self._sparse: set[int] = set()
        self._duplicates: set[int] = set()
        self.duplicate_rows = 0

    @property
    def nbytes(self) -> int:
        return self._bits.nbytes

    def add(self, ids: np.ndarray) -> None:
        dense = (ids >= 0) & (ids < self.DENSE_LIMIT)
        for value in ids[~dense].tolist():
            self._note(value, value in self._sparse)
            self._sparse.add(value)
        ids = ids[dense]
        if not len(ids):
            return
        unique, counts = np.unique(ids, return_counts=True)
        byte, bit = unique >> 3, (unique & 7).astype(np.uint8)
        if byte[-1] >= len(self._bits):  # unique is sorted: its last is the largest
            grown = np.zeros(max(int(byte[-1]) + 1, 2 * len(self._bits)), dtype=np.uint8)
            grown[: len(self._bits)] = self._bits
            self._bits = grown
        seen = ((self._bits[byte] >> bit) & 1).astype(bool)
        repeated = seen | (counts > 1)
        if repeated.any():
            self._duplicates.update(unique[repeated].tolist())
            self.duplicate_rows += int(counts[repeated].sum() - (~seen[repeated]).sum())
        # several ids may share a byte: the unbuffered `at` sets each of their bits
        np.bitwise_or.at(self._bits, byte, np.left_shift(np.uint8(1), bit))

    def _note(self, value: int, seen: bool) -> None:
        if seen:
            self._duplicates.add(value)
            self.duplicate_rows += 1

    def duplicate_ids(self) -> list[int]:
        return sorted(self._duplicates)
