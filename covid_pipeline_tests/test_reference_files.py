"""covid.provinces and covid.departments take a georef file only when it is one: georef's columns, the field
count of every row, ASCII ids in range, each department inside a known province, one name per place,
centroids inside Argentina. A file with one bad row is refused whole, naming the row's physical line and id,
and the previous tables stay as they were.

The files are the real georef releases (covid_pipeline_tests/data/real/, the bundled sample), each damaged on
one line as a download, an editor or a wrong setting would; they go through the asset graph as
`dagster asset materialize` runs it.
"""

import csv
import io
from pathlib import Path

import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.short_registry import UP_TO_AGGREGATES, base_lines, checksums, registry_zip
from covid_pipeline_tests.helpers.warehouse import fingerprint, query, refusal, run_graph

SAMPLE = sample_sources()
PROVINCES_CSV = Path(SAMPLE["COVID_PROVINCES_URL"])
DEPARTMENTS_CSV = Path(SAMPLE["COVID_DEPARTMENTS_URL"])
REFERENCE = ["raw_csv_s3", "provinces", "departments"]
TABLES = ("covid.provinces", "covid.departments")


def edited(folder: Path, original: Path, line: int, old: str, new: str) -> Path:
    """`original` with `old` replaced by `new` on physical line `line` (bytes elsewhere unchanged)."""
    lines = original.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path = folder / "georef" / original.name
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def tables(url) -> dict:
    return {table: fingerprint(url, table) for table in TABLES}


def test_swapped_urls_are_refused_and_named(sample_copy, tmp_path):
    before = tables(sample_copy)
    result = run_graph(
        sample_copy,
        tmp_path,
        provinces=DEPARTMENTS_CSV,
        departments=PROVINCES_CSV,
        selection=REFERENCE,
        raise_on_error=False,
    )
    message = refusal(result, "provinces")
    assert "covid.provinces was left as it was" in message
    assert message.startswith(
        "departamentos.csv, line 1: these are the columns of georef's departamentos.csv, not of provincias.csv: "
        "COVID_PROVINCES_URL points at the departments file"
    ), message
    assert tables(sample_copy) == before
    assert query(sample_copy, "SELECT count(*) FROM covid.provinces") == [(24,)]


# One damaged row each: (what, file, physical line, text there, replaced by, how the refusal starts)
BAD_ROWS = [
    (
        "a row with a field too many",
        DEPARTMENTS_CSV,
        35,
        '"Buenos Aires"',
        '"Buenos Aires","x"',
        'departamentos.csv, line 35: 11 fields where the header has 10 (row of id "06427")',
    ),
    (
        "a row with a field too few",
        DEPARTMENTS_CSV,
        35,
        ',"Buenos Aires"',
        "",
        'departamentos.csv, line 35: 9 fields where the header has 10 (row of id "06427")',
    ),
    (
        "a file cut mid-row",
        DEPARTMENTS_CSV,
        530,
        '8",0.109625204073435,"Corrientes"',
        "",
        'departamentos.csv, line 530 (row of id "18105"): not readable as CSV (a quoted field never closes)',
    ),
    (
        "a department whose provincia_id contradicts its id",
        DEPARTMENTS_CSV,
        35,
        '"06",0.00104421888100573',
        '"02",0.00104421888100573',
        'departamentos.csv, line 35, column provincia_id: "02" contradicts the id "06427", whose first two '
        "digits are its province (06)",
    ),
    (
        "two provinces of one name",
        PROVINCES_CSV,
        4,
        '"San Luis","San Luis"',
        '"San Luis","Neuquen"',
        "provincias.csv, line 4, column nombre: 'Neuquen' is also the name of id \"58\" on line 3 "
        '(row of id "74")',
    ),
    (
        "two departments of one name in a province",
        DEPARTMENTS_CSV,
        35,
        '"La Matanza"',
        '"LA PLATA"',
        "departamentos.csv, line 529, column nombre: 'La Plata' in province 06 is also the name of id "
        '"06427" on line 35 (row of id "06441")',
    ),
    (
        "a latitude of 200",
        PROVINCES_CSV,
        3,
        "-38.6419828626673",
        "200",
        "provincias.csv, line 3, column centroide_lat: cannot read '200': outside Argentina",
    ),
    (
        "an infinite longitude",
        DEPARTMENTS_CSV,
        35,
        "-58.6254456945004",
        "inf",
        "departamentos.csv, line 35, column centroide_lon: cannot read 'inf': not a decimal number",
    ),
    (
        "a province id in Arabic-Indic digits",
        PROVINCES_CSV,
        3,
        '"58"',
        '"٥٨"',
        "provincias.csv, line 3, column id: cannot read '٥٨': a georef province id is 2 digits 0-9",
    ),
    (
        "a province id with an underscore",
        PROVINCES_CSV,
        2,
        '"02"',
        '"0_2"',
        "provincias.csv, line 2, column id: cannot read '0_2': a georef province id is 2 digits 0-9",
    ),
    (
        "a duplicated department id",
        DEPARTMENTS_CSV,
        35,
        '"06427"',
        '"06014"',
        'departamentos.csv, line 35, column id: "06014" again, first on line 2: georef ids are unique',
    ),
]


@pytest.mark.parametrize(
    ("original", "line", "old", "new", "expected"), [pytest.param(*case[1:], id=case[0]) for case in BAD_ROWS]
)
def test_a_bad_row_refuses_the_file_naming_its_line_and_id(
    sample_copy, tmp_path, original, line, old, new, expected
):
    before = tables(sample_copy)
    result = run_graph(
        sample_copy,
        tmp_path,
        **{_argument(original): edited(tmp_path, original, line, old, new)},
        selection=REFERENCE,
        raise_on_error=False,
    )
    step = "provinces" if original == PROVINCES_CSV else "departments"
    message = refusal(result, step)
    assert f"covid.{step} was left as it was" in message
    assert message.startswith(expected), message
    assert tables(sample_copy) == before


def test_a_department_of_a_province_covid_provinces_lacks_is_refused(sample_copy, tmp_path):
    before = tables(sample_copy)
    moved = edited(
        tmp_path,
        DEPARTMENTS_CSV,
        35,
        '"06427","La Matanza","Partido de La Matanza","06"',
        '"98427","La Matanza","Partido de La Matanza","98"',
    )
    message = refusal(
        run_graph(sample_copy, tmp_path, departments=moved, selection=REFERENCE, raise_on_error=False),
        "departments",
    )
    assert message.startswith(
        "departamentos.csv, line 35, column provincia_id: province 98 is not in covid.provinces (which holds 24 "
        'provinces) (row of id "98427")'
    ), message
    assert "covid.departments was left as it was" in message
    assert tables(sample_copy) == before


def test_every_bad_row_is_named_up_to_ten(tmp_path):
    from covid_pipeline.ingest.georef import DEPARTMENTS, GeorefRefused, read_georef

    lines = DEPARTMENTS_CSV.read_text(encoding="utf-8").split("\n")
    for index in range(1, 15):  # lines 2..15: centroids in the Atlantic, east of 25° W
        fields = lines[index].split(",")
        fields[2] = "-10.5"
        lines[index] = ",".join(fields)
    with pytest.raises(GeorefRefused) as refused:
        read_georef("\n".join(lines).encode(), "departamentos.csv", DEPARTMENTS)
    shown = str(refused.value).splitlines()
    assert [s.split(",")[1] for s in shown[:10]] == [f" line {n}" for n in range(2, 12)]
    assert all("column centroide_lon: cannot read '-10.5': outside Argentina" in s for s in shown[:10])
    assert shown[10] == "… and 4 more problems like these" and "refused whole" in shown[11]


@pytest.mark.parametrize(
    ("path", "spec", "rows"),
    [
        (REAL_DATA / "georef_provincias_santif1.csv", "provinces", 24),
        (
            REAL_DATA / "georef_provincias_tp_covid_as_committed.csv",
            "provinces",
            24,
        ),  # double-encoded, repaired
        (REAL_DATA / "georef_departamentos_santif1.csv", "departments", 529),
        (REAL_DATA / "georef_departamentos_msastre73.csv", "departments", 529),
    ],
)
def test_both_real_georef_releases_pass_whole(path, spec, rows):
    from covid_pipeline.ingest.georef import DEPARTMENTS, PROVINCES, read_georef

    spec = {"provinces": PROVINCES, "departments": DEPARTMENTS}[spec]
    read = read_georef(path.read_bytes(), path.name, spec)
    assert len(read) == rows
    # Antártida Argentina and the South Atlantic islands are georef's too, far south and east of the mainland
    if spec is DEPARTMENTS:
        lat = {r.values["department_id"]: r.values["centroid_lat"] for r in read}
        assert lat[94028] < -82 and -54 < lat[94021] < -52


def _argument(original: Path) -> str:
    return "provinces" if original == PROVINCES_CSV else "departments"


def georef_with(folder: Path, source: str, line: int, column: str, value: str) -> Path:
    """The sample's georef file of `source` with `column` of physical line `line` set to `value`."""
    with open(SAMPLE[source], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[line - 2][column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = folder / "georef" / ("provincias.csv" if "PROVINCES" in source else "departamentos.csv")
    path.parent.mkdir(exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "column", "value", "expected"),
    [
        ("COVID_DEPARTMENTS_URL", "id", "99999999999", "departamentos.csv, line 5, column id: cannot read"),
        ("COVID_PROVINCES_URL", "nombre", "Sal\0ta", "provincias.csv, line 5, column nombre: contains a NUL"),
    ],
)
def test_an_overflowing_id_or_a_nul_refuses_the_file_naming_line_and_column(
    short_warehouse, source, column, value, expected
):
    url, folder = short_warehouse
    before = checksums(url)
    table = "departments" if "DEPARTMENTS" in source else "provinces"
    georef = georef_with(folder, source, 5, column, value)
    unchanged = registry_zip(folder, base_lines())
    result = run_graph(
        url, folder, cases=unchanged, **{table: georef}, selection=UP_TO_AGGREGATES, raise_on_error=False
    )
    message = refusal(result, table)
    assert message.startswith(expected), message
    assert checksums(url) == before


# Each rule of docs/places.md on one line of the real files, read as the steps read them: (what, file, physical
# line, text there, replaced by, how the refusal starts).
RULES = [
    (
        "province 99, the registry's SIN ESPECIFICAR",
        PROVINCES_CSV,
        3,
        '"58","AR-Q"',
        '"99","AR-Q"',
        "provincias.csv, line 3, column id: cannot read '99': out of range",
    ),
    (
        "a department id of one digit",
        DEPARTMENTS_CSV,
        35,
        '"06427"',
        '"6"',
        "departamentos.csv, line 35, column id: cannot read '6': a georef department id is 5 digits",
    ),
    (
        "a department id with a trailing space",
        DEPARTMENTS_CSV,
        35,
        '"06427"',
        '"06427 "',
        "departamentos.csv, line 35, column id: cannot read '06427 ': a georef department id is 5 digits",
    ),
    (
        "a department numbered 000",
        DEPARTMENTS_CSV,
        35,
        '"06427"',
        '"06000"',
        "departamentos.csv, line 35, column id: cannot read '06000': out of range",
    ),
    (
        "a province without a name",
        PROVINCES_CSV,
        3,
        '"Neuquén","Neuquén"',
        '"Neuquén",""',
        "provincias.csv, line 3, column nombre: empty, but every province has one",
    ),
    (
        "a name that differs from another only in case and accents",
        PROVINCES_CSV,
        3,
        '"Neuquén","Neuquén"',
        '"Neuquén","CIUDAD AUTONOMA DE BUENOS AIRES"',
        "provincias.csv, line 3, column nombre: 'CIUDAD AUTONOMA DE BUENOS AIRES' is also the name of id \"02\"",
    ),
    (
        "a latitude of nan",
        PROVINCES_CSV,
        3,
        "-38.6419828626673",
        "nan",
        "provincias.csv, line 3, column centroide_lat: cannot read 'nan': not a decimal number",
    ),
    (
        "a number with an underscore",
        PROVINCES_CSV,
        3,
        "-38.6419828626673",
        "-3_8.6",
        "provincias.csv, line 3, column centroide_lat: cannot read '-3_8.6': not a decimal number",
    ),
    (
        "a department without a centroid",
        DEPARTMENTS_CSV,
        35,
        "-34.7703481015398",
        "",
        "departamentos.csv, line 35, column centroide_lat: empty, but every department has one",
    ),
    (
        "a share of the province over 1",
        DEPARTMENTS_CSV,
        35,
        "0.00104421888100573",
        "1.5",
        "departamentos.csv, line 35, column provincia_interseccion: cannot read '1.5': a share of the province",
    ),
    (
        "a tab in a value",
        PROVINCES_CSV,
        3,
        '"Provincia del Neuquén"',
        '"Provincia\tdel Neuquén"',
        "provincias.csv, line 3, column nombre_completo: contains the control character '\\t'",
    ),
    (
        "a line break in a quoted value",
        PROVINCES_CSV,
        3,
        '"Provincia del Neuquén"',
        '"Provincia\ndel Neuquén"',
        "provincias.csv, line 3, column nombre_completo: contains the control character '\\n'",
    ),
    (
        "a quote inside an unquoted field",
        PROVINCES_CSV,
        3,
        '"IGN","58"',
        'IG"N,"58"',
        'provincias.csv, line 3 (row of id "58"): not readable as CSV (a quote inside an unquoted field',
    ),
    (
        "text after a closing quote",
        PROVINCES_CSV,
        3,
        '"IGN","58"',
        '"IGN"x,"58"',
        'provincias.csv, line 3 (row of id "58"): not readable as CSV (text after the field\'s closing quote',
    ),
]


@pytest.mark.parametrize(
    ("original", "line", "old", "new", "expected"), [pytest.param(*rule[1:], id=rule[0]) for rule in RULES]
)
def test_each_rule_refuses_the_file_naming_the_line_and_the_column(original, line, old, new, expected):
    from covid_pipeline.ingest.georef import DEPARTMENTS, PROVINCES, GeorefRefused, read_georef

    lines = original.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    spec = PROVINCES if original == PROVINCES_CSV else DEPARTMENTS
    with pytest.raises(GeorefRefused) as refused:
        read_georef("\n".join(lines).encode(), original.name, spec)
    assert str(refused.value).startswith(expected), str(refused.value)


def test_blank_lines_are_skipped_and_rows_keep_their_physical_lines():
    from covid_pipeline.ingest.georef import PROVINCES, read_georef

    lines = PROVINCES_CSV.read_text(encoding="utf-8").split("\n")
    spaced = [*lines[:2], "", *lines[2:5], "", "", *lines[5:]]
    plain = read_georef("\n".join(lines).encode(), "provincias.csv", PROVINCES)
    read = read_georef("\n".join(spaced).encode(), "provincias.csv", PROVINCES)
    assert [r.values for r in read] == [r.values for r in plain]
    assert [r.line for r in read][:6] == [2, 4, 5, 6, 9, 10]
