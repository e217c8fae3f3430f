"""department_crosswalk: registry (province, department) codes -> georef department ids.

The code join (province * 1000 + department) everywhere, replaced by the exceptions of
data/department_crosswalk.yaml (CABA's comunas, Tierra del Fuego's old codes, Chascomús), whose sources and
reasons that file gives. Built from covid.departments as loaded, so the release-dependent exceptions
(Chascomús) resolve against the georef release in the warehouse. An exception that no longer matches that
release (its georef ids gone, or named otherwise) leaves its registry department unplaced, with the reason,
rather than guessing or stopping the counts: the rules_match check (checks/crosswalk.py) names it.
"""

from functools import cache
from importlib.resources import files

import yaml
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.reference import departments
from covid_pipeline.ingest.georef import plain_name
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.swap import swap_in
from covid_pipeline.resources.warehouse import WarehouseResource

MAPPING_FILE = "department_crosswalk.yaml"
TABLE, INCOMING = "department_crosswalk", "department_crosswalk__incoming"
UNPLACED = "unplaced: "  # how the reason of a rule that no longer matches begins
UNPLACED_RULES = "unplaced: a rule that no longer matches georef (the rules_match check says which)"
RENUMBERED = f"the georef release renumbered or renamed it; update data/{MAPPING_FILE} for it"


@cache
def mapping() -> dict:
    """The exceptions file, as shipped in covid_pipeline/data/."""
    return yaml.safe_load(files("covid_pipeline").joinpath("data", MAPPING_FILE).read_text(encoding="utf-8"))


def same_name(a: str, b: str) -> bool:
    """Names equal but for case and accents (georef writes "Río Grande", registries "RIO GRANDE")."""
    return plain_name(a) == plain_name(b)


def crosswalk_rows(
    georef: dict[int, tuple[int, str]], rules: dict | None = None
) -> list[tuple[int, int, int | None, str]]:
    """(province_id, department_id, georef_department_id, reason) rows for georef's departments.

    `georef` maps each georef department id to its (province_id, name). An exception whose georef ids are all
    missing, or whose department georef names otherwise, gives its registry department no georef id and an
    "unplaced: …" reason: a renumbered release must be looked at, not guessed, and the code join is no
    fallback (the exception exists because the code join is wrong there).
    """
    rules = rules or mapping()
    reasons = rules["reasons"]
    rows = {
        (province_id, georef_id % 1000): (georef_id, reasons["code"])
        for georef_id, (province_id, _) in georef.items()
        if province_id not in rules["mapped_provinces"]
    }
    for rule in rules["exceptions"]:
        found = [g for g in rule["georef"] if g in georef]
        if not found:
            placed = (
                None,
                f"{UNPLACED}none of the georef departments {rule['georef']} ({rule['name']}) is in "
                f"covid.departments: {RENUMBERED}",
            )
        elif not same_name(georef[found[0]][1], rule["name"]):
            placed = (
                None,
                f"{UNPLACED}georef department {found[0]} is {georef[found[0]][1]!r}, not {rule['name']!r}: "
                f"{RENUMBERED}",
            )
        else:
            placed = (found[0], reasons[rule["reason"]])
        rows[(rule["province_id"], rule["department_id"])] = placed
    return [(p, d, g, reason) for (p, d), (g, reason) in sorted(rows.items())]


def create_table(conn, name: str) -> None:
    conn.execute(
        sql.SQL(read_sql("covid_pipeline.assets.sql", "department_crosswalk_table.sql")).format(
            table=sql.Identifier("covid", name)
        )
    )


def build_department_crosswalk(conn) -> dict[str, int]:
    """Rebuild covid.department_crosswalk from covid.departments in the caller's transaction."""
    georef = {
        department_id: (province_id, name)
        for department_id, province_id, name in conn.execute(
            "SELECT department_id, province_id, name FROM covid.departments"
        )
    }
    rows = crosswalk_rows(georef)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("covid", INCOMING)))
    create_table(conn, INCOMING)
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier("covid", INCOMING))) as copy:
        for row in rows:
            copy.write_row(row)
    swap_in(conn, "covid", INCOMING, TABLE)
    by_reason: dict[str, int] = {}
    for *_, reason in rows:
        reason = UNPLACED_RULES if reason.startswith(UNPLACED) else reason
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return by_reason


@asset(
    deps=[departments],
    group_name="reference",
    kinds={"postgres"},
    description="covid.department_crosswalk(province_id, department_id, georef_department_id, reason): "
    "where each registry department lands in georef (code join + data/department_crosswalk.yaml).",
)
def department_crosswalk(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with failures_for_people("covid.department_crosswalk was left as it was."), warehouse.connect() as conn:
        by_reason = build_department_crosswalk(conn)
    unplaced = by_reason.get(UNPLACED_RULES, 0)
    placed = sum(by_reason.values()) - unplaced
    context.log.info(f"covid.department_crosswalk: {placed} registry codes placed on georef departments")
    if unplaced:
        context.log.warning(
            f"covid.department_crosswalk: {unplaced} registry code(s) left unplaced: their rule in {MAPPING_FILE} "
            "no longer matches the loaded georef release (see the rules_match check)"
        )
    table = ["| rule | codes |", "|---|---:|"] + [f"| {r} | {n} |" for r, n in by_reason.items()]
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(sum(by_reason.values())),
            "placed": MetadataValue.int(placed),
            "unplaced": MetadataValue.int(unplaced),
            "rules": MetadataValue.md("\n".join(table)),
        }
    )
