"""The SISA ``Covid19Casos.csv`` format: its 25 source columns and how each is typed and renamed."""

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    ID = "id"  # bigint, must parse or the row is rejected
    INT = "int"  # integer codes and counts ("06" and "6" are both 6)
    TEXT = "text"
    DATE = "date"  # YYYY-MM-DD or empty
    FLAG = "flag"  # SI / NO
    AGE_UNIT = "age_unit"  # Años / Meses: turns `edad` into whole years


@dataclass(frozen=True)
class Column:
    source: str
    target: str
    kind: Kind
    # The values SISA writes; other case/spacing variants (`confirmado `) are brought to these.
    canonical: tuple[str, ...] = ()
    required: bool = False  # an empty value rejects the row
    # SISA fills it in every row and the aggregates and reports count by it: a file that leaves it empty in
    # many rows is refused by the load's gate (gate.py), not loaded with curves that silently shrink.
    filled: bool = False


FLAG_VALUES = ("SI", "NO")


REGISTRY_COLUMNS: tuple[Column, ...] = (
    Column("id_evento_caso", "case_id", Kind.ID, required=True),
    Column("sexo", "sex", Kind.TEXT, ("F", "M", "NR"), filled=True),
    Column("edad", "age_years", Kind.INT, filled=True),
    Column("edad_años_meses", "age_unit", Kind.AGE_UNIT, ("Años", "Meses"), filled=True),
    Column("residencia_pais_nombre", "residence_country", Kind.TEXT),
    Column("residencia_provincia_nombre", "residence_province", Kind.TEXT),
    Column("residencia_departamento_nombre", "residence_department", Kind.TEXT),
    Column("carga_provincia_nombre", "reporting_province", Kind.TEXT),
    Column("fecha_inicio_sintomas", "symptom_onset_date", Kind.DATE),
    Column("fecha_apertura", "opened_date", Kind.DATE, filled=True),
    Column("sepi_apertura", "epi_week", Kind.INT),
    Column("fecha_internacion", "hospitalized_date", Kind.DATE),
    Column("cuidado_intensivo", "icu", Kind.FLAG, FLAG_VALUES, filled=True),
    Column("fecha_cui_intensivo", "icu_date", Kind.DATE),
    Column("fallecido", "deceased", Kind.FLAG, FLAG_VALUES, filled=True),
    Column("fecha_fallecimiento", "death_date", Kind.DATE),
    Column("asistencia_respiratoria_mecanica", "ventilated", Kind.FLAG, FLAG_VALUES, filled=True),
    Column("carga_provincia_id", "reporting_province_id", Kind.INT),
    Column("origen_financiamiento", "funding", Kind.TEXT, ("Público", "Privado")),
    Column("clasificacion", "classification", Kind.TEXT),
    Column(
        "clasificacion_resumen",
        "classification_summary",
        Kind.TEXT,
        ("Confirmado", "Descartado", "Sospechoso"),
        filled=True,
    ),
    Column("residencia_provincia_id", "residence_province_id", Kind.INT, filled=True),
    Column("fecha_diagnostico", "diagnosis_date", Kind.DATE),
    Column("residencia_departamento_id", "residence_department_id", Kind.INT, filled=True),
    # Every row of a publication carries its date: an empty one is a line cut short.
    Column("ultima_actualizacion", "last_updated", Kind.DATE, required=True),
)

SOURCE_NAMES: tuple[str, ...] = tuple(c.source for c in REGISTRY_COLUMNS)
TARGET_NAMES: tuple[str, ...] = tuple(c.target for c in REGISTRY_COLUMNS)

# The loaded table also keeps where each row came from (duplicates keep the last line).
LOADED_COLUMNS: tuple[str, ...] = (*TARGET_NAMES, "source_line")

# The columns the gate refuses to see empty in many rows (see Column.filled).
FILLED_COLUMNS: tuple[Column, ...] = tuple(c for c in REGISTRY_COLUMNS if c.filled)

# Text columns with a fixed set of values: values outside it are kept and reported by a check.
CATEGORICAL_COLUMNS: tuple[Column, ...] = tuple(
    c for c in REGISTRY_COLUMNS if c.kind is Kind.TEXT and c.canonical
)

# Dates outside these years are typing errors (`0000-01-01`, `20200-...`), not dates of the epidemic.
FIRST_YEAR, LAST_YEAR = 1900, 2100

# The name of the member inside SISA's zip.
CASES_MEMBER = "Covid19Casos.csv"
