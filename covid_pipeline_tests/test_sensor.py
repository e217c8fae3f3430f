"""The new-publication sensor against a loopback server whose files change, and against local files."""

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from covid_pipeline.automation import new_publication
from covid_pipeline.definitions import defs
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import row, write_registry
from covid_pipeline_tests.helpers.warehouse import run_graph


def evaluate(sources: SourcesResource, raw_location) -> RunRequest | SkipReason:
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        resources={"sources": sources, "raw_store": StoreResource(location=str(raw_location))},
    )
    return new_publication(context)


def resource_of(urls: dict[str, str]) -> SourcesResource:
    return SourcesResource(**{f"{source}_url": url for source, url in urls.items()})


def publish_sources(http_server, tmp_path, n_cases: int) -> dict[str, str]:
    cases = write_registry(
        tmp_path / f"{n_cases}.zip", [row(id_evento_caso=str(i)) for i in range(1, n_cases + 1)]
    )
    return {
        "cases": http_server.publish("Covid19Casos.zip", cases.read_bytes()),
        "provinces": http_server.publish(
            "provincias.csv", (REAL_DATA / "georef_provincias_santif1.csv").read_bytes()
        ),
        "departments": http_server.publish(
            "departamentos.csv", (REAL_DATA / "georef_departamentos_santif1.csv").read_bytes()
        ),
    }


def test_a_run_is_requested_only_when_a_publication_changes(database_url, http_server, tmp_path):
    urls = publish_sources(http_server, tmp_path, 50)
    sources = resource_of(urls)
    raw = tmp_path / "raw"

    first = evaluate(sources, raw)  # nothing fetched yet
    assert (
        isinstance(first, RunRequest) and first.tags["covid/changed_sources"] == "cases,provinces,departments"
    )

    assert run_graph(database_url, tmp_path, **urls).success
    downloads = sum(method == "GET" for method, _, _ in http_server.requests)
    unchanged = evaluate(sources, raw)
    assert isinstance(unchanged, SkipReason) and "no source has changed" in unchanged.skip_message
    # the sensor only asked (HEAD): it downloaded nothing
    assert sum(method == "GET" for method, _, _ in http_server.requests) == downloads

    # the Ministry republishes the registry (the georef files keep their Last-Modified)
    republished = write_registry(tmp_path / "new.zip", [row(id_evento_caso=str(i)) for i in range(1, 61)])
    http_server.publish("Covid19Casos.zip", republished.read_bytes())
    changed = evaluate(sources, raw)
    assert isinstance(changed, RunRequest) and changed.tags["covid/changed_sources"] == "cases"
    assert changed.run_key != first.run_key  # a new publication, a new run key: Dagster runs it
    assert evaluate(sources, raw).run_key == changed.run_key  # the same publication, the same run key

    assert run_graph(database_url, tmp_path, **urls).success
    assert isinstance(evaluate(sources, raw), SkipReason)


def test_local_files_are_compared_by_content(database_url, tmp_path):
    cases = write_registry(
        tmp_path / "src" / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 40)]
    )
    urls = {
        "cases": str(cases),
        "provinces": str(REAL_DATA / "georef_provincias_santif1.csv"),
        "departments": str(REAL_DATA / "georef_departamentos_santif1.csv"),
    }
    sources = resource_of(urls)
    assert run_graph(database_url, tmp_path, **urls).success
    assert isinstance(evaluate(sources, tmp_path / "raw"), SkipReason)
    write_registry(
        cases, [row(id_evento_caso=str(i), sexo="F") for i in range(1, 40)]
    )  # same size, new content
    assert isinstance(evaluate(sources, tmp_path / "raw"), RunRequest)


def test_an_unreachable_source_is_skipped_with_the_reason(http_server, tmp_path):
    sources = SourcesResource(cases_url=http_server.url("missing.zip"))
    result = evaluate(sources, tmp_path / "raw")
    assert isinstance(result, SkipReason) and "could not ask the cases source" in result.skip_message
    assert "404" in result.skip_message


def test_the_sensor_targets_the_whole_graph():
    sensor = defs.resolve_sensor_def("new_publication")
    assert sensor.job_name == "refresh_everything"
    assert defs.resolve_schedule_def("daily_refresh").job_name == "refresh_everything"
