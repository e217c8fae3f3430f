"""Where a registry case should land in georef, worked out here from the georef CSV and the published facts,
not from the pipeline's crosswalk: the tests compare the two."""

import csv
import re
import unicodedata
from pathlib import Path

from covid_pipeline_tests.conftest import REAL_DATA

GEOREF_RELEASES = {
    "santif1": REAL_DATA / "georef_departamentos_santif1.csv",
    "msastre73": REAL_DATA / "georef_departamentos_msastre73.csv",
}


def georef_departments(path: Path) -> dict[int, str]:
    """georef department id -> name, read with the csv module."""
    with open(path, encoding="utf-8", newline="") as handle:
        return {int(r["id"]): r["nombre"] for r in csv.DictReader(handle)}


def expected_georef_id(province: int, department: int, georef: dict[int, str]) -> int | None:
    """The georef id a residence should have, or None for SIN ESPECIFICAR / a code georef lacks."""
    if province == 99 or department == 0:
        return None
    if province == 2:  # CABA: "COMUNA n" is georef's "Comuna n", whichever id georef gives it
        [found] = [i for i, name in georef.items() if i // 1000 == 2 and name == f"Comuna {department}"]
        return found
    if (province, department) == (94, 7):
        return 94008
    if (province, department) == (94, 14):
        return 94015
    if (province, department) in ((6, 217), (6, 218)):
        return 6218 if 6218 in georef else 6217
    code = province * 1000 + department
    return code if code in georef else None


def plain(name: str) -> str:
    """A name without accents, case, punctuation or leading zeros ("COMUNA 07" == "Comuna 7")."""
    text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold()
    return re.sub(r"\b0+(\d)", r"\1", re.sub(r"[^a-z0-9 ]", "", text)).strip()
