"""The one local Dagster instance that `demo`, `dev`, `dagster dev`, `dagster asset materialize` and `dg` share.

It lives in $DAGSTER_HOME when that is set, else in $COVID_HOME/dagster, and holds the settings of the
packaged dagster.yaml. Plain `dagster ...` commands find it through DAGSTER_HOME:
`export DAGSTER_HOME=$(covid-pipeline dagster-home)`.
"""

import os
from importlib.resources import files
from pathlib import Path

from covid_pipeline.resources.embedded_postgres import default_home

SETTINGS = files("covid_pipeline") / "dagster.yaml"
# The first line of the packaged file: a dagster.yaml that starts with it was written by us, and is
# rewritten when the packaged one changes; any other dagster.yaml is the user's and is left alone.
MARKER = SETTINGS.read_text().splitlines()[0]


def dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    return Path(home).expanduser().resolve() if home else default_home().expanduser().resolve() / "dagster"


def prepare_dagster_home() -> Path:
    """Create the instance folder with the packaged settings, and point DAGSTER_HOME at it (for this
    process and the processes it starts)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target, wanted = home / "dagster.yaml", SETTINGS.read_text()
    current = target.read_text() if target.exists() else None
    if current is None or (current != wanted and current.startswith(MARKER)):
        target.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
