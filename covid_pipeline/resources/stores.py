"""The Dagster resource for an object store: raw sources and published reports each get one."""

import os

from dagster import ConfigurableResource
from pydantic import Field

from covid_pipeline.resources.embedded_postgres import default_home
from covid_pipeline.resources.object_store import ObjectStore, location_problem
from covid_pipeline.resources.quality import SettingError


class StoreResource(ConfigurableResource):
    """A folder or s3://bucket/prefix; empty means the folder `default_folder` under $COVID_HOME."""

    location: str = Field(default="", description="local folder or s3://bucket/prefix")
    default_folder: str = Field(default="raw", description="folder under $COVID_HOME when location is empty")

    def store(self) -> ObjectStore:
        # Named in messages as definitions.py sets it: COVID_RAW_STORE, COVID_REPORTS_STORE, or COVID_HOME
        setting = f"COVID_{self.default_folder.upper()}_STORE"
        return ObjectStore(
            self.location or str(default_home() / self.default_folder),
            name=f"{self.default_folder} store",
            setting=setting if self.location else f"COVID_HOME (or {setting})",
        )


def check_store_setting(variable: str) -> None:
    """Refuse, naming the variable, a store setting that is neither a folder nor s3://bucket/prefix."""
    value = os.environ.get(variable, "")
    if value and (problem := location_problem(value)):
        raise SettingError(f"{variable}={value!r} {problem}.")
