"""A run that finds the registry unchanged still reports what covid.cases holds (the UI's plots have no holes)."""

import re

from covid_pipeline.assets.cases import UNCHANGED_TAG
from covid_pipeline_tests.helpers.warehouse import metadata_of, query, run_graph


def test_the_skip_carries_the_row_count_and_the_counts_of_the_load_the_table_came_from(
    database_url, tmp_path
):
    first_run, second_run = run_graph(database_url, tmp_path), run_graph(database_url, tmp_path)
    first, again = metadata_of(first_run, "cleaned_cases"), metadata_of(second_run, "cleaned_cases")

    assert first["unchanged_source"] is False and again["unchanged_source"] is True
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", first["rows_per_second"])  # 66,120 in the UI, not 66120.0
    # and the UI shows it on the materialization, as a tag
    [loaded] = first_run.asset_materializations_for_node("cleaned_cases")
    [kept] = second_run.asset_materializations_for_node("cleaned_cases")
    assert UNCHANGED_TAG not in (loaded.tags or {}) and kept.tags[UNCHANGED_TAG] == "true"
    [(load_id, read, loaded, rejected, duplicates, last_updated)] = query(
        database_url,
        "SELECT load_id, rows_read, rows_loaded, rows_rejected, duplicate_rows, last_updated FROM covid.loads",
    )
    assert query(database_url, "SELECT count(*) FROM covid.cases") == [(loaded,)]
    for metadata in (first, again):
        assert metadata["load_id"] == load_id
        assert metadata["dagster/row_count"] == metadata["rows_loaded"] == loaded
        assert (metadata["rows_read"], metadata["rows_rejected"]) == (read, rejected)
        assert metadata["duplicate_rows"] == duplicates
        assert metadata["last_updated"] == str(last_updated)
