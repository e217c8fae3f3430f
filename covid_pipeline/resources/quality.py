"""How much bad data the pipeline tolerates before it refuses a load or fails a check.

One resource, so the load's gate (which keeps the previous tables when a file looks damaged) and the
asset checks shown in the UI judge by the same numbers. Each field can be set by the env var
COVID_<FIELD NAME> (e.g. COVID_MAX_ROW_DROP=0.5): thresholds are not secrets, so they show in the UI.
A value that is not a fraction between 0 and 1 (say `10%`) stops the code location from loading with a
message naming the variable.
"""

import os
from datetime import date

from dagster import ConfigurableResource
from pydantic import Field


class QualityResource(ConfigurableResource):
    max_row_drop: float = Field(
        default=0.10,
        description="refuse a registry with this fraction fewer loaded rows than the previous load "
        "(a truncated publication); 1.0 accepts any drop",
    )
    max_rejected_share: float = Field(
        default=0.01, description="refuse a registry in which more than this fraction of rows is rejected"
    )
    max_out_of_range_date_share: float = Field(
        default=0.001,
        description="warn when more than this fraction of dates falls outside earliest_date .. the file's date",
    )
    max_unknown_province_share: float = Field(
        default=0.001,
        description="warn when more than this fraction of cases has a province code georef does not know "
        "(99, 'SIN ESPECIFICAR', is counted apart)",
    )
    max_unmatched_department_share: float = Field(
        default=0.25,
        description="warn when more than this fraction of cases has a department code georef does not know "
        "(0, 'SIN ESPECIFICAR', counted apart; CABA's comunas and Tierra del Fuego never match)",
    )
    max_reference_row_drop: float = Field(
        default=0.05,
        description="refuse a georef provinces/departments file with this fraction fewer rows than the table "
        "it would replace (a header-only or truncated download); 1.0 accepts any drop",
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
                overrides[name] = _setting(variable, value, field.annotation, field.description)
        return cls(**overrides)


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take."""


BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def parse_boolean(variable: str, value: str) -> bool:
    """A yes/no setting: true/false, yes/no, on/off or 1/0, in any case; anything else is refused,
    naming the variable."""
    try:
        return BOOLEANS[value.strip().lower()]
    except KeyError:
        raise SettingError(
            f"{variable}={value!r} is not a yes/no value: write true/false, yes/no, on/off or 1/0."
        ) from None


def _setting(variable: str, value: str, kind: type, description: str | None):
    if kind is str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise SettingError(
                f"{variable}={value!r} is not a date: write it as YYYY-MM-DD ({description})."
            ) from None
        return value
    try:
        number = kind(value)
    except ValueError:
        raise SettingError(
            f"{variable}={value!r} is not a number: write a fraction between 0 and 1, e.g. 0.1 for 10% "
            f"({description})."
        ) from None
    if not 0 <= number <= 1:
        raise SettingError(
            f"{variable}={value!r} is out of range: write a fraction between 0 and 1 ({description})."
        )
    return number
