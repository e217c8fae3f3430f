"""covid.daily_aggregates, cell by cell, against a recount with the csv module, on a compact registry made from
the real sample's rows with what the sample lacks: many days, duplicated ids, rejected rows, empty dates."""

import csv
import io
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest

from covid_pipeline_tests.helpers.registry import real_rows, registry_text
from covid_pipeline_tests.helpers.warehouse import metadata_of, query, run_graph

MEASURES = ("notified", "confirmed", "deaths", "icu", "ventilated")


def real_shaped_registry() -> tuple[str, dict]:
    """Real rows: every ICU, ventilated or deceased case and every third other one, spread over 45 days; then
    repeated ids (the later row changed), rows that break the format, rows without a notification date."""
    rows = [
        r
        for n, r in enumerate(real_rows())
        if n % 3 == 0
        or "SI" in (r["cuidado_intensivo"], r["asistencia_respiratoria_mecanica"], r["fallecido"])
    ]
    for n, r in enumerate(rows):
        r["fecha_apertura"] = str(date(2020, 9, 20) + timedelta(days=n % 45))
    for r in rows[5:3000:100]:
        r["fecha_apertura"] = ""
    last_id = max(int(r["id_evento_caso"]) for r in rows)
    later = [
        r
        | {
            "clasificacion_resumen": "Confirmado"
            if r["clasificacion_resumen"] != "Confirmado"
            else "Descartado",
            "residencia_departamento_id": rows[-n]["residencia_departamento_id"],
            "residencia_provincia_id": rows[-n]["residencia_provincia_id"],
        }
        for n, r in enumerate(rows[10:1000:25], start=1)
    ]
    broken = [
        r
        | {"id_evento_caso": str(last_id + n), "cuidado_intensivo": "QUIZAS" if n % 2 else "SI", "edad": "x"}
        for n, r in enumerate(rows[7:1500:100], start=1)
    ]
    lines = rows[:1000] + broken[:7] + rows[1000:] + later + broken[7:]  # rejects within and at the end
    rejected = {r["id_evento_caso"] for r in broken}
    return registry_text(lines), {"read": len(lines), "duplicates": len(later), "rejected": rejected}


def recount(text: str, rejected_ids: set[str]) -> dict:
    """Per (notification date, province, department): the five measures, from the text."""
    last = {
        r["id_evento_caso"]: r
        for r in csv.DictReader(io.StringIO(text))
        if r["id_evento_caso"] not in rejected_ids
    }
    cells: dict[tuple, Counter] = defaultdict(Counter)
    for r in last.values():
        key = (
            r["fecha_apertura"] or None,
            int(r["residencia_provincia_id"]),
            int(r["residencia_departamento_id"]),
        )
        confirmed = r["clasificacion_resumen"] == "Confirmado"
        cells[key]["notified"] += 1
        cells[key]["confirmed"] += confirmed
        cells[key]["deaths"] += confirmed and r["fallecido"] == "SI"
        cells[key]["icu"] += confirmed and r["cuidado_intensivo"] == "SI"
        cells[key]["ventilated"] += confirmed and r["asistencia_respiratoria_mecanica"] == "SI"
    return {key: tuple(c[m] for m in MEASURES) for key, c in cells.items()}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    text, expected = real_shaped_registry()
    path = tmp_path_factory.mktemp("real-shaped") / "Covid19Casos.csv"
    path.write_text(text, encoding="utf-8")
    return path, text, expected


def test_daily_aggregates_equal_a_recount_cell_by_cell(database_url, tmp_path, registry):
    path, text, expected = registry
    result = run_graph(
        database_url,
        tmp_path,
        cases=path,
        selection=["raw_csv_s3", "provinces", "departments", "cleaned_cases", "daily_aggregates"],
    )
    assert result.success
    cases = metadata_of(result, "cleaned_cases")
    assert (cases["rows_read"], cases["duplicate_rows"], cases["rows_rejected"]) == (
        expected["read"],
        expected["duplicates"],
        len(expected["rejected"]),
    )
    rejected_ids = {
        r[0] for r in query(database_url, "SELECT split_part(raw_line, '\"', 2) FROM covid.rejected_cases")
    }
    assert rejected_ids == expected["rejected"]
    cells = recount(text, expected["rejected"])
    aggregates = {
        (str(d) if d else None, p, dep): tuple(values)
        for d, p, dep, *values in query(
            database_url,
            "SELECT date, province_id, department_id, notified, confirmed, deaths, icu, ventilated "
            "FROM covid.daily_aggregates",
        )
    }
    assert aggregates == cells
    # what the registry exercises, so that the comparison means something
    totals = dict(zip(MEASURES, map(sum, zip(*cells.values(), strict=True)), strict=True))
    assert totals["icu"] > 20 and totals["ventilated"] > 20 and totals["deaths"] > 20
    assert len({key[0] for key in cells}) > 40 and None in {key[0] for key in cells}
    assert len({key[1:] for key in cells}) > 200
