"""Write a synthetic SISA registry of any size, shaped on the real 2020-11-23 sample.

    python benchmarks/generate_registry.py --rows 1000000 --out /tmp/Covid19Casos.zip

Every row mixes three real rows of the sample, so joint values stay realistic: one gives the place
(country, residence province/department names and ids, reporting province), one the person and
outcome (sex, age, flags, classification, funding, and how many days each date lies from
`fecha_apertura`, or that it is empty), and a moving window gives `fecha_apertura` itself: it starts
on 2020-03-01 and advances with the ascending ids, `--rows-per-day` rows a day (the full registry
holds tens of millions of rows notified over about two and a half years). `sepi_apertura`
is the epidemiological week of that date. A few ids repeat a recent one (a later correction: the
loader keeps the last). Output is SISA's quoting (non-empty fields quoted, empty ones bare), UTF-8,
LF, zipped as `Covid19Casos.csv`; rows are streamed, so memory does not grow with `--rows`.
The same seed gives the same bytes.
"""

import argparse
import csv
import io
import zipfile
from collections import deque
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

import numpy as np

MEMBER = "Covid19Casos.csv"
# The real 2020-11-23 sample the package ships (byte-identical to the shared reference copy).
REAL_SAMPLE = Path(str(files("covid_pipeline") / "data" / "sample" / "Covid19Casos.zip"))
PLACE = (
    "residencia_pais_nombre",
    "residencia_provincia_nombre",
    "residencia_departamento_nombre",
    "carga_provincia_nombre",
    "carga_provincia_id",
    "residencia_provincia_id",
    "residencia_departamento_id",
)
DATES = (
    "fecha_inicio_sintomas",
    "fecha_internacion",
    "fecha_cui_intensivo",
    "fecha_fallecimiento",
    "fecha_diagnostico",
)
FIRST_DAY = date(2020, 3, 1)
ROWS_PER_DAY = 30_000
BATCH = 50_000
FIRST_ID = 1_000_000

# Rows that break the cleaning contract in known ways, for --bad-rows (used in turn).
BAD_ROW_CHANGES = (
    {"fecha_apertura": '"2021-02-30"'},  # not a real date
    {"id_evento_caso": '"12x"'},  # not an integer id
    {"cuidado_intensivo": '"QUIZAS"'},  # not SI/NO
    {"residencia_provincia_id": '"-6"'},  # not an integer code
    {"ultima_actualizacion": None},  # a line cut short: 24 fields
)


def quoted(value: str) -> str:
    """A field as SISA writes it: quoted when not empty, nothing at all when empty."""
    return '"' + value.replace('"', '""') + '"' if value else ""


def epi_week(day: date) -> int:
    """Argentina's (and the CDC's) epidemiological week: Sunday to Saturday, week 1 holds January 4."""

    def first_sunday(year: int) -> date:
        jan4 = date(year, 1, 4)
        return jan4 - timedelta(days=(jan4.weekday() + 1) % 7)

    start = first_sunday(day.year + 1)
    if day < start:
        start = first_sunday(day.year)
        if day < start:
            start = first_sunday(day.year - 1)
    return (day - start).days // 7 + 1


class RealShapes:
    """The sample's rows, cut into the parts a synthetic row is put together from."""

    def __init__(self, sample: Path = REAL_SAMPLE):
        with zipfile.ZipFile(sample) as archive, archive.open(MEMBER) as member:
            reader = csv.DictReader(io.TextIOWrapper(member, encoding="utf-8", newline=""))
            self.header = list(reader.fieldnames)
            rows = list(reader)
        self.places = [{c: quoted(r[c]) for c in PLACE} for r in rows]
        self.people = [self._person(r) for r in rows]

    @staticmethod
    def _person(row: dict) -> dict:
        opened = date.fromisoformat(row["fecha_apertura"])
        person = {c: quoted(row[c]) for c in row if c not in PLACE and c not in DATES}
        # Dates as offsets in days from fecha_apertura (None = empty), so they move with the window.
        person["offsets"] = {c: (date.fromisoformat(row[c]) - opened).days if row[c] else None for c in DATES}
        return person


class RegistryWriter:
    """Synthetic rows, batch by batch, as CSV lines."""

    def __init__(
        self,
        rows: int,
        seed: int,
        duplicate_share: float,
        bad_rows: int,
        rows_per_day: int,
        shapes: RealShapes,
    ):
        self.rows, self.shapes = rows, shapes
        self.random = np.random.default_rng(seed)
        self.duplicate_share = duplicate_share
        # Bad rows spread evenly through the file, each breaking the contract in the next way.
        spread = np.linspace(0, rows - 1, min(bad_rows, rows), dtype=np.int64).tolist() if bad_rows else []
        self.bad_at = {index: BAD_ROW_CHANGES[n % len(BAD_ROW_CHANGES)] for n, index in enumerate(spread)}
        self.rows_per_day = rows_per_day
        span = rows // rows_per_day + 1
        self.days = [FIRST_DAY + timedelta(days=d) for d in range(-400, span + 400)]
        self.last_updated = quoted((FIRST_DAY + timedelta(days=span + 1)).isoformat())
        self.published = 400 + span + 1  # its index in self.days: no date of a row lies after it
        self.day_text = [quoted(d.isoformat()) for d in self.days]
        self.week_text = [quoted(str(epi_week(d))) for d in self.days]
        self.duplicates = 0

    def lines(self):
        yield ",".join(quoted(c) for c in self.shapes.header) + "\n"
        next_id = FIRST_ID
        recent: deque[int] = deque(maxlen=1000)
        for start in range(0, self.rows, BATCH):
            size = min(BATCH, self.rows - start)
            places = self.random.integers(len(self.shapes.places), size=size)
            people = self.random.integers(len(self.shapes.people), size=size)
            # Real ids have gaps (ids 1000000-1013453 hold 10,075 rows): steps of 1 or 2, mostly 1.
            steps = self.random.choice((1, 1, 2), size=size)
            repeat = self.random.random(size) < self.duplicate_share
            jitter = self.random.integers(-3, 1, size=size)
            for k in range(size):
                index = start + k
                bad = self.bad_at.get(index)
                if repeat[k] and recent and not bad:
                    case_id = recent[int(places[k]) % len(recent)]  # any recent id: a later correction
                    self.duplicates += 1
                else:
                    next_id += int(steps[k])
                    case_id = next_id
                    if not bad:  # a rejected row's id is never repeated: the counts stay exact
                        recent.append(case_id)
                day = 400 + max(0, index // self.rows_per_day + int(jitter[k]))
                place, person = self.shapes.places[places[k]], self.shapes.people[people[k]]
                yield self._line(case_id, place, person, day, bad)

    def _line(self, case_id: int, place: dict, person: dict, day: int, bad: dict | None) -> str:
        last = self.published
        dates = {
            c: (self.day_text[min(max(day + o, 0), last)] if o is not None else "")
            for c, o in person["offsets"].items()
        }
        values = {
            **person,
            **place,
            **dates,
            "id_evento_caso": quoted(str(case_id)),
            "fecha_apertura": self.day_text[day],
            "sepi_apertura": self.week_text[day],
            "ultima_actualizacion": self.last_updated,
        }
        if bad:
            values.update(bad)
        return ",".join(values[c] for c in self.shapes.header if values[c] is not None) + "\n"


def write_registry(
    out: Path,
    rows: int,
    *,
    seed: int = 1,
    duplicate_share: float = 0.001,
    bad_rows: int = 0,
    rows_per_day: int = ROWS_PER_DAY,
    level: int = 6,
) -> dict:
    """Write the zip; returns what it holds (rows, duplicates, bad rows, bytes of the CSV)."""
    writer = RegistryWriter(rows, seed, duplicate_share, bad_rows, rows_per_day, RealShapes())
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_bytes = 0
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive,
        archive.open(MEMBER, "w", force_zip64=True) as member,
    ):
        buffer: list[str] = []
        for line in writer.lines():
            buffer.append(line)
            if len(buffer) >= 10_000:
                csv_bytes += _flush(member, buffer)
        csv_bytes += _flush(member, buffer)
    return {
        "rows": rows,
        "duplicates": writer.duplicates,
        "bad_rows": len(writer.bad_at),
        "csv_bytes": csv_bytes,
    }


def _flush(member, buffer: list[str]) -> int:
    data = "".join(buffer).encode("utf-8")
    member.write(data)
    buffer.clear()
    return len(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/Covid19Casos.zip"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--duplicate-share", type=float, default=0.001, help="share of rows repeating a recent id"
    )
    parser.add_argument(
        "--bad-rows", type=int, default=0, help="rows that break the contract (rejected on load)"
    )
    parser.add_argument("--rows-per-day", type=int, default=ROWS_PER_DAY, help="rows notified each day")
    parser.add_argument("--level", type=int, default=6, help="zip deflate level")
    args = parser.parse_args(argv)
    summary = write_registry(
        args.out,
        args.rows,
        seed=args.seed,
        duplicate_share=args.duplicate_share,
        bad_rows=args.bad_rows,
        rows_per_day=args.rows_per_day,
        level=args.level,
    )
    print(" ".join(f"{k}={v}" for k, v in summary.items()), f"out={args.out}")


if __name__ == "__main__":
    main()
