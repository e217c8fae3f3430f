"""The georef files, provincias.csv and departamentos.csv: their format, and what a file must pass before it
replaces covid.provinces or covid.departments.

georef-ar-etl (datosgobar/georef-ar-etl, loaders.py) writes them with csv.QUOTE_NONNUMERIC, columns sorted
alphabetically; both releases kept in covid_pipeline_tests/data/real/ have exactly the columns below. A file
is read with the registry's CSV grammar (ingest/records.py) and checked whole, as strictly as the registry:
its columns, the field count of every row, ASCII ids of the right width and range, each department inside
its province, names unique per province, centroids inside Argentina. Reference data is small and every row
of it matters, so one bad row refuses the whole file: the message names each bad row's physical line, its id
and the column, and the previous tables stay.
"""

import csv
import math
import re
import unicodedata
from dataclasses import dataclass

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.reader import looks_double_encoded, position_of, repair_double_encoding
from covid_pipeline.ingest.records import Broken, parse_record

# Argentina's extent, the Antarctic sector and the South Atlantic islands included: georef's own centroids go
# there (Antártida Argentina, 94028, lies at -82.8°; Islas del Atlántico Sur, 94021, at -53.4°).
# Source: Instituto Geográfico Nacional, "Límites, superficie y puntos extremos"
# (https://www.ign.gob.ar/NuestrasActividades/Geografia/DatosArgentina/LimitesSuperficieYPuntosExtremos):
# north 21°46'52" S (the Grande de San Juan meets the Mojinete, Jujuy); the Argentine Antarctic sector reaches
# the South Pole between the meridians 25° W and 74° W (Ley 23.775, the province of Tierra del Fuego,
# Antártida e Islas del Atlántico Sur), which also enclose the continent's westernmost point (73°34' W) and the
# South Sandwich Islands (26°-28° W).
LATITUDE = (-90.0, -(21 + 46 / 60 + 52 / 3600))
LONGITUDE = (-74.0, -25.0)
BOUNDS = "Argentina with its Antarctic sector and South Atlantic islands: latitude -90 to -21.78, longitude -74 to -25"

DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")  # what georef writes; float() takes far more
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SHOWN_PROBLEMS = 10


class GeorefRefused(SourceFormatError):
    """A georef file that cannot replace its table: the message names every bad row (up to ten)."""


@dataclass(frozen=True)
class Column:
    source: str  # georef's column
    target: str  # covid.<table>'s column
    kind: str = "text"  # text | province_id | department_id | latitude | longitude | share
    required: bool = False


@dataclass(frozen=True)
class GeorefFile:
    table: str  # covid.<table>
    published_as: str  # georef's file name
    setting: str  # the source URL's environment variable
    noun: str
    columns: tuple[Column, ...]  # in the order georef writes them

    @property
    def names(self) -> list[str]:
        return [c.source for c in self.columns]


PROVINCES = GeorefFile(
    "provinces",
    "provincias.csv",
    "COVID_PROVINCES_URL",
    "province",
    (
        Column("categoria", "category"),
        Column("centroide_lat", "centroid_lat", "latitude", required=True),
        Column("centroide_lon", "centroid_lon", "longitude", required=True),
        Column("fuente", "source"),
        Column("id", "province_id", "province_id", required=True),
        Column("iso_id", "iso_id"),
        Column("iso_nombre", "iso_name"),
        Column("nombre", "name", required=True),
        Column("nombre_completo", "full_name"),
    ),
)

DEPARTMENTS = GeorefFile(
    "departments",
    "departamentos.csv",
    "COVID_DEPARTMENTS_URL",
    "department",
    (
        Column("categoria", "category"),
        Column("centroide_lat", "centroid_lat", "latitude", required=True),
        Column("centroide_lon", "centroid_lon", "longitude", required=True),
        Column("fuente", "source"),
        Column("id", "department_id", "department_id", required=True),
        Column("nombre", "name", required=True),
        Column("nombre_completo", "full_name"),
        Column("provincia_id", "province_id", "province_id", required=True),
        Column("provincia_interseccion", "province_intersection", "share"),
        Column("provincia_nombre", "province_name"),
    ),
)

FILES = (PROVINCES, DEPARTMENTS)


@dataclass
class Row:
    line: int  # physical line of the file
    values: dict  # covid.<table> column -> value


def plain_name(name: str) -> str:
    """A name without accents, case or surrounding spaces ("Río Grande" and "RIO GRANDE" are one name)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(text.casefold().split())


def read_georef(data: bytes, file_name: str, spec: GeorefFile) -> list[Row]:
    """The rows of a georef file, typed as covid.<table> holds them; GeorefRefused names what is wrong."""
    text = _decoded(data, file_name)
    if looks_double_encoded(text.split("\n", 1)[0] + text[:20000]):
        text = repair_double_encoding(text)
    raw = text.encode("utf-8")
    if not raw.endswith(b"\n"):
        raw += b"\n"
    header, position = _record(raw, 0, file_name, spec)
    _check_header([h.decode() for h in header], file_name, spec)
    problems: list[str] = []
    rows: list[Row] = []
    line = raw.count(b"\n", 0, position) + 1
    while position < len(raw):
        start = position
        if raw.startswith(b"\n", position) or raw.startswith(b"\r\n", position):
            position = (
                raw.index(b"\n", position) + 1
            )  # a blank line holds no row (the registry skips them too)
            line += 1
            continue
        fields, position = _record(raw, start, file_name, spec)
        values = [f.decode("utf-8") for f in fields]
        row_problems: list[str] = []
        typed = _typed(values, spec, row_problems)
        where = f"{file_name}, line {line}"
        problems.extend(f"{where}{p}" for p in row_problems)
        if not row_problems:
            rows.append(Row(line, typed))
        line += raw.count(b"\n", start, position)
    problems.extend(_across_rows(rows, file_name, spec))
    if problems:
        raise GeorefRefused(_refusal(problems, file_name, spec))
    return rows


def refuse_unknown_provinces(rows: list[Row], provinces: dict[int, str], file_name: str) -> None:
    """Refuse departments whose province covid.provinces does not hold (`provinces`: id -> name)."""
    problems = [
        f"{file_name}, line {row.line}, column provincia_id: province {row.values['province_id']:02d} is not in "
        f"covid.provinces (which holds {len(provinces)} provinces) (row of id "
        f'"{row.values["department_id"]:05d}")'
        for row in rows
        if row.values["province_id"] not in provinces
    ]
    if problems:
        raise GeorefRefused(_refusal(problems, file_name, DEPARTMENTS))


def _decoded(data: bytes, file_name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = position_of(data, exc.start)
        raise GeorefRefused(
            f"{file_name}, line {line}, column {column}: not valid UTF-8; georef publishes UTF-8, fetch it again"
        ) from exc


def _record(raw: bytes, start: int, file_name: str, spec: GeorefFile) -> tuple[list[bytes], int]:
    try:
        return parse_record(raw, start)
    except Broken as broken:
        line = raw.count(b"\n", 0, start) + 1
        text = raw[start : raw.find(b"\n", start)].decode("utf-8", errors="replace")
        raise GeorefRefused(
            f"{file_name}, line {line}{_id_of(text, spec)}: not readable as CSV ({broken.reason}); "
            "a line cut short? The whole file was refused: fetch it again."
        ) from None


def _id_of(line_text: str, spec: GeorefFile) -> str:
    """`(row of id "…")` for a line that cannot be trusted, read as leniently as possible."""
    fields = next(csv.reader([line_text]), [])
    index = spec.names.index("id")
    return f' (row of id "{fields[index]}")' if len(fields) > index and fields[index] else ""


def _check_header(found: list[str], file_name: str, spec: GeorefFile) -> None:
    expected = spec.names
    if found == expected:
        return
    other = next(f for f in FILES if f is not spec)
    if sorted(found) == sorted(other.names):
        raise GeorefRefused(
            f"{file_name}, line 1: these are the columns of georef's {other.published_as}, not of "
            f"{spec.published_as}: {spec.setting} points at the {other.noun}s file (are {spec.setting} and "
            f"{other.setting} swapped?). Nothing was loaded."
        )
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    details = [f"missing: {', '.join(missing)}"] if missing else []
    details += [f"unexpected: {', '.join(extra)}"] if extra else []
    raise GeorefRefused(
        f"{file_name}, line 1: the header is not georef's {spec.published_as} "
        f"({'; '.join(details) or 'same columns in another order'}).\n"
        f"Expected {len(expected)} columns, in georef's alphabetical order: {', '.join(expected)}\n"
        f"Found {len(found)}: {', '.join(found)}\n"
        f"Nothing was loaded. Check {spec.setting}."
    )


def _typed(values: list[str], spec: GeorefFile, problems: list[str]) -> dict:
    """The row's values as covid.<table> holds them; each problem is appended as ", column …: …"."""
    names = spec.names
    id_text = values[names.index("id")] if len(values) > names.index("id") else ""
    of_row = f' (row of id "{id_text}")' if id_text else ""
    if len(values) != len(names):
        problems.append(
            f": {len(values)} fields where the header has {len(names)}{of_row}: a line cut short, or a stray "
            "comma"
        )
        return {}
    typed = {}
    for column, value in zip(spec.columns, values, strict=True):
        shown = "" if column.source == "id" else of_row
        if CONTROL.search(value):
            found = CONTROL.search(value).group()
            what = "a NUL byte (0x00)" if found == "\0" else f"the control character {found!r}"
            problems.append(f", column {column.source}: contains {what}, which no georef value has{shown}")
            continue
        if not value.strip():
            if column.required:
                problems.append(f", column {column.source}: empty, but every {spec.noun} has one{shown}")
            typed[column.target] = None
            continue
        try:
            typed[column.target] = _parse(column, value)
        except ValueError as exc:
            problems.append(f", column {column.source}: cannot read {value!r}: {exc}{shown}")
    if "department_id" in typed and "province_id" in typed:
        department, province = typed["department_id"], typed["province_id"]
        if department // 1000 != province:
            problems.append(
                f', column provincia_id: "{values[names.index("provincia_id")]}" contradicts the id '
                f'"{id_text}", whose first two digits are its province ({department // 1000:02d})'
            )
        typed["department_code"] = department % 1000
    return typed


def _parse(column: Column, value: str):
    if column.kind == "text":
        return value
    if column.kind in ("province_id", "department_id"):
        width = 2 if column.kind == "province_id" else 5
        if not (len(value) == width and value.isascii() and value.isdigit()):
            raise ValueError(
                f"a georef {column.kind.replace('_', ' ')} is {width} digits 0-9 (e.g. "
                f"{'06' if width == 2 else '06427'})"
            )
        number = int(value)
        province = number if width == 2 else number // 1000
        if not 1 <= province <= 98 or (width == 5 and number % 1000 == 0):
            raise ValueError(
                "out of range: provinces are 01-98 (99 is the registry's SIN ESPECIFICAR) and a department's "
                "last three digits 001-999"
            )
        return number
    if not DECIMAL.fullmatch(value):
        raise ValueError("not a decimal number as georef writes them (e.g. -34.61)")
    number = float(value)
    low, high = {"latitude": LATITUDE, "longitude": LONGITUDE, "share": (0.0, 1.0)}[column.kind]
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"outside {BOUNDS}" if column.kind != "share" else "a share of the province: 0 to 1")
    return number


def _across_rows(rows: list[Row], file_name: str, spec: GeorefFile) -> list[str]:
    """Duplicated ids, and names repeated within a province (they would merge in the marts)."""
    problems = []
    id_column = spec.columns[spec.names.index("id")].target
    first_of_id: dict[int, Row] = {}
    first_of_name: dict[tuple, Row] = {}
    width = 2 if spec is PROVINCES else 5
    for row in rows:
        identifier = row.values[id_column]
        shown = f'"{identifier:0{width}d}"'
        if identifier in first_of_id:
            problems.append(
                f"{file_name}, line {row.line}, column id: {shown} again, first on line "
                f"{first_of_id[identifier].line}: georef ids are unique"
            )
            continue
        first_of_id[identifier] = row
        province = row.values["province_id"]
        key = (province if spec is DEPARTMENTS else None, plain_name(row.values["name"]))
        if key in first_of_name:
            first = first_of_name[key]
            within = f" in province {province:02d}" if spec is DEPARTMENTS else ""
            problems.append(
                f"{file_name}, line {row.line}, column nombre: {row.values['name']!r}{within} is also the name of "
                f'id "{first.values[id_column]:0{width}d}" on line {first.line} (row of id {shown}): two '
                f"{spec.noun}s of one name would merge in the reports"
            )
        else:
            first_of_name[key] = row
    return problems


def _refusal(problems: list[str], file_name: str, spec: GeorefFile) -> str:
    shown = problems[:SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    return "\n".join(
        [
            *shown,
            *([f"… and {more} more problems like these"] if more else []),
            f"{file_name} was refused whole: covid.{spec.table} is reference data, and a row it cannot trust "
            f"would misplace cases. Fetch the file again, or check {spec.setting}.",
        ]
    )
