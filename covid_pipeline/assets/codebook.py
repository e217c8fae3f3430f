"""codebook: the data dictionary of the warehouse, generated from the schema, published as Markdown beside the report.

Every table of the `covid` and `reporting` schemas, each column with its type as PostgreSQL's catalogue has it,
its meaning, the registry column it comes from and its caveat. Where those come from:
- the tables created with a column list (covid.loads, the georef tables, ...): the comment beside each column in
  their CREATE TABLE;
- covid.cases: the registry's format (ingest/registry_format.py) for the source column;
- the tables built by a query (the marts and their inputs, covid.cases, covid.daily_aggregates):
  assets/sql/reporting/columns.yaml;
- each table's description: the first comment line of its definition.
A column documented nowhere is listed as such, never left out.
"""

import re
from importlib.resources import files

import yaml
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.reporting import READS, key_of, mart_sql, schema_of
from covid_pipeline.ingest.registry_format import REGISTRY_COLUMNS
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

CODEBOOK_KEY = "codebook.md"
UNDOCUMENTED = "(not documented)"

# Tables whose CREATE TABLE lists the columns, each with a comment: (package, file) of that definition.
DEFINED_IN = {
    "covid.loads": ("covid_pipeline.resources", "warehouse.sql"),
    "covid.rejected_cases": ("covid_pipeline.resources", "warehouse.sql"),
    "covid.cases": ("covid_pipeline.assets.sql", "cases_table.sql"),
    "covid.provinces": ("covid_pipeline.assets.sql", "provinces_table.sql"),
    "covid.departments": ("covid_pipeline.assets.sql", "departments_table.sql"),
    "covid.department_crosswalk": ("covid_pipeline.assets.sql", "department_crosswalk_table.sql"),
    "covid.province_population": ("covid_pipeline.assets.sql", "province_population.sql"),
}
BUILT_BY_QUERY = {"covid.daily_aggregates": ("covid_pipeline.assets.sql", "daily_aggregates.sql")} | {
    f"{schema_of(name)}.{name}": None for name in READS
}

CATALOGUE = """
    SELECT n.nspname || '.' || c.relname AS table_name, a.attname AS column_name,
           format_type(a.atttypid, a.atttypmod) AS type
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname IN ('covid', 'reporting') AND c.relkind IN ('r', 'p', 'v', 'm')
       AND right(c.relname, 10) <> '__incoming'
     ORDER BY n.nspname = 'covid', n.nspname, c.relname, a.attnum"""


def column_docs() -> dict:
    text = files("covid_pipeline.assets.sql.reporting").joinpath("columns.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def create_table_comments(sql_text: str) -> dict[str, dict]:
    """From a file of CREATE TABLE statements: each table's leading comment and its columns' comments.

    Keys are the table names as written (`covid.loads`) or `{table}` for a definition under a loading name.
    Columns added later (`ALTER TABLE ... ADD COLUMN`) take the comment lines just above them.
    """
    tables, current, comments = {}, None, []
    for line in sql_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            comments.append(stripped.removeprefix("--").strip())
            continue
        created = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(\S+) \(", stripped)
        added = re.match(r"ALTER TABLE (\S+) ADD COLUMN (?:IF NOT EXISTS )?(\w+)", stripped)
        if created:
            current = tables.setdefault(created[1], {"description": " ".join(comments), "columns": {}})
        elif added and added[1] in tables:
            tables[added[1]]["columns"][added[2]] = " ".join(comments)
        elif current and stripped.startswith(");"):
            current = None
        elif current and (column := re.match(r"(\w+)\s+[^-]*--\s*(.+)$", stripped)):
            current["columns"][column[1]] = column[2].strip()
        comments = []
    return tables


def describe_tables() -> dict[str, dict]:
    """table -> {"description": ..., "columns": {column: {"meaning", "source", "caveat"}}}, from the definitions."""
    docs = column_docs()
    described = {}
    for table, (package, name) in DEFINED_IN.items():
        found = create_table_comments(read_sql(package, name))
        entry = found.get(table) or found.get("{table}") or {"description": "", "columns": {}}
        described[table] = {
            "description": entry["description"].removeprefix(f"{table}: "),
            "columns": {c: {"meaning": text} for c, text in entry["columns"].items()},
        }
    for table, definition in BUILT_BY_QUERY.items():
        name = table.split(".", 1)[1]
        text = read_sql(*definition) if definition else mart_sql(name)
        described.setdefault(table, {"columns": {}})["description"] = _first_comment(text)
    sources = {c.target: c.source for c in REGISTRY_COLUMNS}
    for table, entry in described.items():
        for column, doc in docs["tables"].get(table, {}).items():
            entry["columns"][column] = doc
        if table == "covid.cases":
            for column, source in sources.items():
                entry["columns"].setdefault(column, {}).setdefault("source", source)
    return described


def _first_comment(sql_text: str) -> str:
    """A definition's first comment line, without the table name it starts with."""
    first = sql_text.split("\n", 1)[0].removeprefix("--").strip()
    return first.split(": ", 1)[1] if ": " in first else first


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def render_codebook(catalogue: list[tuple[str, str, str]], published) -> tuple[str, list[str]]:
    """The Markdown page, and the columns it found no meaning for (`table.column`)."""
    described, shared = describe_tables(), column_docs()["columns"]
    lines = [
        "# Data dictionary: the covid-pipeline warehouse",
        "",
        f"Registry published on {published or 'unknown (no load yet)'}. Generated from the schema: the tables and "
        "columns PostgreSQL holds, their types, and what their definitions say (docs/reporting.md explains the "
        "marts). `reporting` is what Metabase reads; `covid` holds the cleaned registry and the marts' inputs.",
    ]
    undocumented = []
    for table, columns in _grouped(catalogue):
        entry = described.get(table, {"description": "", "columns": {}})
        description = entry["description"] or UNDOCUMENTED
        lines += ["", f"## {table}", "", description[:1].upper() + description[1:], ""]
        lines += ["| column | type | meaning | from the registry | caveat |", "|---|---|---|---|---|"]
        for column, type_ in columns:
            doc = {**shared.get(column, {}), **entry["columns"].get(column, {})}
            if not doc.get("meaning"):
                undocumented.append(f"{table}.{column}")
            lines.append(
                f"| `{column}` | {type_} | {_cell(doc.get('meaning') or UNDOCUMENTED)} | "
                f"{_cell(doc.get('source'))} | {_cell(doc.get('caveat'))} |"
            )
    return "\n".join(lines) + "\n", undocumented


def _grouped(catalogue):
    tables: dict[str, list] = {}
    for table, column, type_ in catalogue:
        tables.setdefault(table, []).append((column, type_))
    return tables.items()


@asset(
    deps=[key_of(name) for name in READS],
    group_name="reporting",
    kinds={"markdown"},
    description="The data dictionary (codebook.md in the reports store): every table and column of the warehouse "
    "with its type, meaning, registry source and caveat, generated from the schema.",
)
def codebook(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_store: StoreResource
) -> MaterializeResult:
    with (
        failures_for_people("The published data dictionary was left as it was."),
        warehouse.connect() as conn,
    ):
        catalogue = conn.execute(CATALOGUE).fetchall()
        [(published,)] = conn.execute("SELECT last_updated FROM reporting.latest_update").fetchall() or [
            (None,)
        ]
    markdown, undocumented = render_codebook(catalogue, published)
    store = reports_store.store()
    uri = store.put_bytes(markdown.encode("utf-8"), CODEBOOK_KEY, "text/markdown; charset=utf-8")
    if undocumented:
        context.log.warning(f"columns without a meaning in the data dictionary: {', '.join(undocumented)}")
    link = MetadataValue.url if store.is_s3 else MetadataValue.path
    return MaterializeResult(
        metadata={
            "codebook_uri": link(uri),
            "tables": MetadataValue.int(len({t for t, _, _ in catalogue})),
            "columns": MetadataValue.int(len(catalogue)),
            "undocumented_columns": MetadataValue.int(len(undocumented)),
            "codebook": MetadataValue.md(markdown),
        }
    )
