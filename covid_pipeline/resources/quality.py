"""How much bad data the pipeline tolerates before it refuses a load or fails a check.

One resource, so the load's gate (which keeps the previous tables when a file looks damaged) and the
asset checks shown in the UI judge by the same numbers. Each field can be set by the env var
COVID_<FIELD NAME> (e.g. COVID_MAX_ROW_DROP=0.5): thresholds are not secrets, so they show in the UI.
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
    earliest_date: str = Field(default="2020-01-01", description="no case date of the registry is older")

    @property
    def earliest(self) -> date:
        return date.fromisoformat(self.earliest_date)

    @classmethod
    def from_env(cls) -> "QualityResource":
        """The defaults, overridden by the COVID_<FIELD> env vars that are set."""
        overrides = {}
        for name, field in cls.model_fields.items():
            value = os.environ.get(f"COVID_{name.upper()}")
            if value:
                overrides[name] = field.annotation(value)
        return cls(**overrides)
