"""How much bad data the pipeline tolerates before it refuses a load or fails a check.

One resource, so the load's gate (which keeps the previous tables when a file looks damaged) and the
asset checks shown in the UI judge by the same numbers. Each field can be set by the env var
COVID_<FIELD NAME> (e.g. COVID_MAX_ROW_DROP=0.5): thresholds are not secrets, so they show in the UI.
A value the setting cannot take (say `10%` for a fraction, `maybe` for a yes/no) stops the code location
from loading with a message naming the variable.
"""

import math
import os
from datetime import date

from annotated_types import Ge, Le
from dagster import ConfigurableResource
from pydantic import Field

TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class QualityResource(ConfigurableResource):
    max_row_drop: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="refuse a registry with this fraction fewer loaded rows than the previous load "
        "(a truncated publication); 1.0 accepts any drop",
    )
    max_row_growth: float = Field(
        default=0.50,
        ge=0,
        description="refuse a registry with more than this fraction more loaded rows than the previous load "
        "(every case twice under new ids, another file); 0.5 is half as many again, a large number such as "
        "1000 accepts any growth",
    )
    max_rejected_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="refuse a registry in which more than this fraction of rows is rejected",
    )
    max_duplicate_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="refuse a registry in which more than this fraction of the accepted rows repeats an "
        "id_evento_caso seen before in the file (an export that went wrong)",
    )
    max_empty_share: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="refuse a registry in which more than this fraction of the accepted rows leaves empty a "
        "column the aggregates and reports count by (fecha_apertura, clasificacion_resumen, ...), "
        "which SISA fills in every row",
    )
    future_date_tolerance_days: int = Field(
        default=1,
        ge=0,
        description="days a row's dates may lie after its own ultima_actualizacion, and its "
        "ultima_actualizacion after the day of the load (Argentina's date), before the row is rejected "
        "as impossible (clocks and records stamped around midnight)",
    )
    allow_older_publication: bool = Field(
        default=False,
        description="load a registry whose publication date (its most common ultima_actualizacion) is older "
        "than the one covid.cases holds (yes/no); by default such a file is refused",
    )
    max_out_of_range_date_share: float = Field(
        default=0.001,
        ge=0,
        le=1,
        description="warn when more than this fraction of dates falls outside earliest_date .. the file's date",
    )
    max_unknown_province_share: float = Field(
        default=0.001,
        ge=0,
        le=1,
        description="warn when more than this fraction of cases has a province code georef does not know "
        "(99, 'SIN ESPECIFICAR', is counted apart)",
    )
    max_unmatched_department_share: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="warn when more than this fraction of cases has a department code georef does not know "
        "(0, 'SIN ESPECIFICAR', counted apart; CABA's comunas and Tierra del Fuego never match)",
    )
    max_reference_row_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="refuse a georef provinces/departments file with this fraction fewer rows than the table "
        "it would replace (a header-only or truncated download); 1.0 accepts any drop",
    )
    max_reference_row_growth: float = Field(
        default=0.10,
        ge=0,
        description="refuse a georef provinces/departments file with more than this fraction more rows than "
        "the table it would replace (the two files swapped, another file); a large number accepts any growth",
    )
    earliest_date: str = Field(default="2020-01-01", description="no case date of the registry is older")

    @property
    def earliest(self) -> date:
        return date.fromisoformat(self.earliest_date)

    @classmethod
    def from_env(cls) -> "QualityResource":
        """The defaults, overridden by the COVID_<FIELD> env vars that are set."""
        overrides = {}
        for name, field in cls.model_fields.items():
            variable = f"COVID_{name.upper()}"
            value = os.environ.get(variable)
            if value:
                overrides[name] = _setting(variable, value, field)
        return cls(**overrides)


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def parse_boolean(variable: str, value: str) -> bool:
    """A yes/no setting: true/false, yes/no, on/off or 1/0, in any case; anything else is refused."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingError(
        f"{variable}={value!r} is not a yes/no value: write true/false, yes/no, on/off or 1/0."
    )


def _setting(variable: str, value: str, field):
    kind, description = field.annotation, field.description
    if kind is bool:
        return parse_boolean(variable, value)
    if kind is str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise SettingError(
                f"{variable}={value!r} is not a date: write it as YYYY-MM-DD ({description})."
            ) from None
        return value
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), -math.inf)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), math.inf)
    if kind is int:
        expected = f"a whole number of at least {low}, e.g. {field.default}"
    elif high == 1:
        expected = "a fraction between 0 and 1, e.g. 0.1 for 10%"
    else:
        expected = f"a number of at least {low}, e.g. {field.default}"
    try:
        number = kind(value)
    except ValueError:
        raise SettingError(
            f"{variable}={value!r} is not a number: write {expected} ({description})."
        ) from None
    if not low <= number <= high or math.isnan(number):
        raise SettingError(f"{variable}={value!r} is out of range: write {expected} ({description}).")
    return number
