"""Build registry files in SISA's real format (every field quoted, empty fields bare) for tests."""

import csv
import io
import zipfile
from functools import cache
from pathlib import Path

from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.conftest import REAL_DATA

REAL_SAMPLE = REAL_DATA / "covid19casos_tp_covid_2020-11-23_utf8_repaired.csv"


@cache
def _real_rows() -> tuple[dict, ...]:
    with open(REAL_SAMPLE, encoding="utf-8", newline="") as handle:
        return tuple(csv.DictReader(handle))


def real_rows(limit: int | None = None) -> list[dict]:
    """Rows of the real 2020-11-23 sample as dicts of source column → text ('' for empty)."""
    return [dict(r) for r in _real_rows()[:limit]]


def row(**changes) -> dict:
    """A real row (the sample's first confirmed case) with some fields changed."""
    base = next(r for r in _real_rows() if r["clasificacion_resumen"] == "Confirmado")
    return base | changes


def format_line(values: list[str]) -> str:
    """One CSV line as SISA writes it: non-empty fields quoted, empty ones as nothing."""
    return ",".join('"' + v.replace('"', '""') + '"' if v != "" else "" for v in values)


def registry_text(rows: list[dict], header: list[str] | None = None, newline: str = "\n") -> str:
    header = list(header or SOURCE_NAMES)
    lines = [format_line(header)] + [format_line([r.get(c, "") for c in header]) for r in rows]
    return newline.join(lines) + newline


def write_registry(
    path: Path, rows: list[dict], *, zipped: bool = None, encoding: str = "utf-8", **kwargs
) -> Path:
    """Write rows as a .csv or, for a .zip path, a zip holding Covid19Casos.csv."""
    data = registry_text(rows, **kwargs).encode(encoding)
    if encoding.lower() in ("utf-16", "utf-16-le") and not data.startswith(b"\xff\xfe"):
        data = b"\xff\xfe" + data
    path.parent.mkdir(parents=True, exist_ok=True)
    if zipped or (zipped is None and path.suffix == ".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("Covid19Casos.csv", data)
    else:
        path.write_bytes(data)
    return path


def count_independently(path: Path) -> dict:
    """Counts from a registry CSV with the csv module, for checking the SQL aggregates."""
    totals = {"notified": 0, "confirmed": 0, "deaths": 0, "icu": 0, "ventilated": 0}
    by_id: dict[str, dict] = {}
    opener = _open_text(path)
    with opener as handle:
        for record in csv.DictReader(handle):
            by_id[record["id_evento_caso"]] = record  # the last occurrence wins
    for record in by_id.values():
        totals["notified"] += 1
        if record["clasificacion_resumen"] == "Confirmado":
            totals["confirmed"] += 1
            totals["deaths"] += record["fallecido"] == "SI"
            totals["icu"] += record["cuidado_intensivo"] == "SI"
            totals["ventilated"] += record["asistencia_respiratoria_mecanica"] == "SI"
    return totals


def read_records(path: Path) -> list[dict]:
    """The records of a UTF-8 registry (.csv or .zip) as the csv module reads them, for recounting."""
    with _open_text(path) as handle:
        return list(csv.DictReader(handle))


def _open_text(path: Path):
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        return io.TextIOWrapper(archive.open(archive.namelist()[0]), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def write_large_registry(path: Path, copies: int) -> Path:
    """The real sample repeated `copies` times with fresh ids: a file that takes a while to load."""
    header, *lines = REAL_SAMPLE.read_text(encoding="utf-8").splitlines()
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(header + "\n")
        for copy in range(copies):
            for number, line in enumerate(lines):
                out.write(f'"{copy * len(lines) + number + 1}"{line[line.index(",") :]}\n')
    return path
