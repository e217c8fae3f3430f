"""The data dictionary: every table and column the warehouse holds, with its type from the catalogue and a meaning
for each, published as Markdown in the reports store and shown in the asset's metadata."""

import re

import psycopg

from covid_pipeline.assets.codebook import UNDOCUMENTED, create_table_comments
from covid_pipeline_tests.helpers.warehouse import metadata_of, run_graph

# Tables whose every column must have a meaning: what Metabase and the exports show, the cleaned registry, and the
# marts' inputs. (covid.loads, the georef tables and the crosswalk are described by their CREATE TABLE comments.)
DOCUMENTED = (
    "reporting.",
    "covid.cases",
    "covid.daily_aggregates",
    "covid.case_breakdown",
    "covid.onset_breakdown",
    "covid.age_bands",
    "covid.province_population",
)


def sections(markdown: str) -> dict[str, list[list[str]]]:
    """## table -> the rows of its column table (column, type, meaning, source, caveat)."""
    found, current = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:], [])
        elif current is not None and line.startswith("| `"):
            current.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return found


def test_the_codebook_lists_every_column_with_its_type_and_meaning(sample_warehouse, tmp_path):
    result = run_graph(sample_warehouse, tmp_path, selection=["codebook"], reports_store=tmp_path)
    markdown = (tmp_path / "codebook.md").read_text(encoding="utf-8")
    metadata = metadata_of(result, "codebook")
    assert metadata["codebook"] == markdown  # shown in the UI as it is published
    with psycopg.connect(sample_warehouse) as conn:
        catalogue = conn.execute(
            "SELECT table_schema || '.' || table_name, column_name, "
            "format_type(atttypid, atttypmod) FROM information_schema.columns "
            "JOIN pg_attribute ON attrelid = (quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass "
            "AND attname = column_name WHERE table_schema IN ('covid', 'reporting') "
            "AND table_name NOT LIKE '%\\_\\_incoming' ORDER BY 1, ordinal_position"
        ).fetchall()
    tables = sections(markdown)
    expected: dict[str, list] = {}
    for table, column, type_ in catalogue:
        expected.setdefault(table, []).append([f"`{column}`", type_])
    assert {t: [row[:2] for row in rows] for t, rows in tables.items()} == expected
    assert metadata["columns"] == len(catalogue) and metadata["tables"] == len(expected)
    undocumented = [f"{t}.{row[0]}" for t, rows in tables.items() for row in rows if row[2] == UNDOCUMENTED]
    assert [c for c in undocumented if c.startswith(DOCUMENTED)] == []
    assert metadata["undocumented_columns"] == len(undocumented)
    # the registry column each field of covid.cases comes from, and a mart's meaning, source and caveat
    cases = {row[0]: row for row in tables["covid.cases"]}
    assert cases["`opened_date`"][3] == "fecha_apertura" and cases["`sex`"][3] == "sexo"
    assert tables["reporting.positivity_by_province_week"][-1] == [
        "`positivity`",
        "numeric",
        "confirmed / (confirmed + discarded), a fraction between 0 and 1.",
        "",
        "NULL when both are 0; suspected cases count in neither, so the latest weeks change as they are classified.",
    ]
    assert (
        "\n## reporting.incidence_by_province\n\nConfirmed cases and deaths of confirmed cases per 100,000"
        in markdown
    )


def test_create_table_comments_reads_each_column_and_later_additions():
    definition = """-- covid.example: one row per thing.
CREATE TABLE IF NOT EXISTS covid.example (
    thing_id   bigint PRIMARY KEY,  -- the thing
    label      text,                -- what it is called: a name
    plain      integer
);
-- How big it is (in metres).
ALTER TABLE covid.example ADD COLUMN IF NOT EXISTS size double precision;
"""
    assert create_table_comments(definition) == {
        "covid.example": {
            "description": "covid.example: one row per thing.",
            "columns": {
                "thing_id": "the thing",
                "label": "what it is called: a name",
                "size": "How big it is (in metres).",
            },
        }
    }
