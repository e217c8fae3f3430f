"""The quality settings (resources/quality.py) as a deployment sets them: env vars read through definitions.py,
yes/no values in the usual spellings, and every value a setting cannot take refused naming the variable."""

import os
import subprocess
import sys

import pytest

from covid_pipeline.resources.quality import QualityResource, SettingError, parse_boolean


@pytest.mark.parametrize("word", ["true", "TRUE", "Yes", "on", "1", " yes "])
def test_the_usual_spellings_of_yes_are_true(word):
    assert parse_boolean("COVID_X", word) is True


@pytest.mark.parametrize("word", ["false", "No", "OFF", "0"])
def test_the_usual_spellings_of_no_are_false(word):
    assert parse_boolean("COVID_X", word) is False


@pytest.mark.parametrize("word", ["si", "y", "2", "enabled", ""])
def test_anything_else_is_refused_naming_the_variable_and_the_accepted_values(word):
    with pytest.raises(SettingError) as refused:
        parse_boolean("COVID_ALLOW_OLDER_PUBLICATION", word)
    assert str(refused.value) == (
        f"COVID_ALLOW_OLDER_PUBLICATION={word!r} is not a yes/no value: "
        "write true/false, yes/no, on/off or 1/0."
    )


def test_the_settings_reach_the_definitions_as_a_deployment_sets_them():
    """Env vars, as an ECS task definition's Environment sets them, read when the code location loads."""
    settings = {
        "COVID_ALLOW_OLDER_PUBLICATION": "on",
        "COVID_FUTURE_DATE_TOLERANCE_DAYS": "3",
        "COVID_MAX_ROW_GROWTH": "2.5",
        "COVID_MAX_REFERENCE_ROW_GROWTH": "0.2",
        "COVID_MAX_DUPLICATE_SHARE": "0.05",
        "COVID_MAX_EMPTY_SHARE": "0.3",
    }
    code = (
        "from covid_pipeline.definitions import defs; "
        "q = defs.resources['quality']; "
        "print(q.allow_older_publication, q.future_date_tolerance_days, q.max_row_growth, "
        "q.max_reference_row_growth, q.max_duplicate_share, q.max_empty_share)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], env=os.environ | settings, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["True", "3", "2.5", "0.2", "0.05", "0.3"]


def test_the_defaults_when_nothing_is_set(monkeypatch):
    for name in QualityResource.model_fields:
        monkeypatch.delenv(f"COVID_{name.upper()}", raising=False)
    quality = QualityResource.from_env()
    assert quality.allow_older_publication is False
    assert quality.future_date_tolerance_days == 1
    assert (quality.max_row_growth, quality.max_reference_row_growth) == (0.5, 0.1)
    assert (quality.max_duplicate_share, quality.max_empty_share) == (0.05, 0.1)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("COVID_ALLOW_OLDER_PUBLICATION", "maybe", "is not a yes/no value"),
        ("COVID_FUTURE_DATE_TOLERANCE_DAYS", "1.5", "is not a number: write a whole number of at least 0"),
        ("COVID_FUTURE_DATE_TOLERANCE_DAYS", "-1", "is out of range: write a whole number of at least 0"),
        ("COVID_MAX_ROW_GROWTH", "-0.1", "is out of range: write a number of at least 0"),
        ("COVID_MAX_ROW_GROWTH", "50%", "is not a number"),
        ("COVID_MAX_REFERENCE_ROW_GROWTH", "nan", "is out of range"),
        ("COVID_MAX_DUPLICATE_SHARE", "2", "is out of range: write a fraction between 0 and 1"),
        ("COVID_MAX_EMPTY_SHARE", "lots", "is not a number: write a fraction between 0 and 1"),
        ("COVID_MAX_ROW_DROP", "10%", "is not a number: write a fraction between 0 and 1"),
        ("COVID_MAX_REJECTED_SHARE", "5", "is out of range: write a fraction between 0 and 1"),
        ("COVID_EARLIEST_DATE", "2020", "is not a date: write it as YYYY-MM-DD"),
    ],
)
def test_a_value_the_setting_cannot_take_is_refused_naming_the_variable(
    monkeypatch, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=f"^{variable}={value!r} {expected}"):
        QualityResource.from_env()


def test_a_bad_setting_stops_the_code_location_with_one_line():
    loaded = subprocess.run(
        [sys.executable, "-c", "import covid_pipeline.definitions"],
        env=os.environ | {"COVID_ALLOW_OLDER_PUBLICATION": "si"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode != 0
    assert "SettingError: COVID_ALLOW_OLDER_PUBLICATION='si' is not a yes/no value" in loaded.stderr
