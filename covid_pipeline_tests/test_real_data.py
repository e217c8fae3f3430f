"""The real files the tests use are exact copies of the team's shared reference data."""

from pathlib import Path

import pytest

from covid_pipeline_tests.conftest import REAL_DATA, SHARED_REAL_DATA

VENDORED = sorted(p.name for p in REAL_DATA.iterdir() if p.suffix == ".csv")


@pytest.mark.skipif(
    not SHARED_REAL_DATA.is_dir(),
    reason=f"the team's reference copy of these files ({SHARED_REAL_DATA}) is not on this machine: "
    "nothing to compare the files in covid_pipeline_tests/data/real/ with",
)
@pytest.mark.parametrize("name", VENDORED)
def test_vendored_file_is_the_shared_one(name):
    assert (REAL_DATA / name).read_bytes() == (SHARED_REAL_DATA / name).read_bytes()


def test_the_real_registry_samples_are_there():
    assert "covid19casos_tp_covid_2020-11-23_utf8_repaired.csv" in VENDORED
    assert (REAL_DATA / "README.md").read_text().startswith("# Real data")


def test_the_samples_readme_speaks_to_users_not_to_the_team():
    """The package's sample README is read by users: it names no folder of the team's own machines."""
    readme = (
        Path(__file__).resolve().parents[1] / "covid_pipeline" / "data" / "sample" / "README.md"
    ).read_text()
    assert "shared/" not in readme and "team" not in readme
