"""Driving a running Dagster webserver the way its UI does: GraphQL over HTTP.

`materialize_all` sends the mutation the UI's "Materialize all" button sends: a launch of the implicit
asset job with every asset and every asset check selected. Used by the tests and the whole-graph benchmark.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import requests

ASSETS = """
{ assetNodes { assetKey { path } repository { name location { name } }
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status startTime endTime } }
}
"""

STEP_EVENTS = """
query Events($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection { cursor hasMore events { __typename ... on MessageEvent { stepKey timestamp } } }
  }
}
"""

WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

REEXECUTE = """
mutation Reexecute($parentRunId: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on PipelineNotFoundError { message }
  }
}
"""

RUNS_OF_JOB = """
query RunsOfJob($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status parentRunId
        repositoryOrigin { repositoryLocationName repositoryName } } }
  }
}
"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def start_dev(env: dict, port: int, log_path, host: str = "127.0.0.1", cwd=None) -> subprocess.Popen:
    """`python -m covid_pipeline dev` with environment `env` (from the folder `cwd`), in a process group of its
    own (stopped whole)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "covid_pipeline", "dev", "--port", str(port), "--host", host],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, timeout: float = 60) -> bool:
    """Stop the dev services as Ctrl-C does (SIGINT to the group). True when every process of the group
    (webserver, daemon, code servers, run workers) ended by itself; the rest are killed."""
    deadline = time.monotonic() + timeout
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return process.poll() is not None
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return False


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"{base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def wait_for_graphql(base_url: str, process: subprocess.Popen | None = None, timeout: float = 180) -> None:
    """Until the webserver answers and its code locations are loaded (it answers before they are: a
    launch then would find no assets). A location that fails to load is an error at once."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the dev command exited with code {process.returncode}")
        with contextlib.suppress(requests.ConnectionError, requests.HTTPError, RuntimeError, KeyError):
            entries = graphql(base_url, WORKSPACE)["workspaceOrError"]["locationEntries"]
            for entry in entries:
                if (
                    entry["locationOrLoadError"]
                    and entry["locationOrLoadError"]["__typename"] == "PythonError"
                ):
                    raise AssertionError(
                        f"code location {entry['name']}: {entry['locationOrLoadError']['message']}"
                    )
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url}/graphql did not answer with its code loaded in {timeout} s")
        time.sleep(0.5)


def materialize_all(base_url: str, run_config: dict | None = None) -> str:
    """Launch every asset and check as "Materialize all" does (with the launchpad's `run_config` if
    given); returns the run id."""
    nodes = graphql(base_url, ASSETS)["assetNodes"]
    location = nodes[0]["repository"]
    checks = [
        {"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]}
        for node in nodes
        for check in (node["assetChecksOrError"] or {}).get("checks", [])
    ]
    params = {
        "mode": "default",
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": []},
        "selector": {
            "repositoryLocationName": location["location"]["name"],
            "repositoryName": location["name"],
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": node["assetKey"]["path"]} for node in nodes],
            "assetCheckSelection": checks,
        },
    }
    launched = graphql(base_url, LAUNCH, {"executionParams": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launch refused: {launched}")
    return launched["run"]["runId"]


def wait_for_run(base_url: str, run_id: str, timeout: float = 600) -> dict:
    """The run once it has finished: status, startTime, endTime (seconds since the epoch)."""
    deadline = time.monotonic() + timeout
    while True:
        run = graphql(base_url, RUN, {"runId": run_id})["runOrError"]
        if run.get("status") in FINISHED:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.get('status')} after {timeout} s")
        time.sleep(0.5)


def reexecute_all(base_url: str, run_id: str) -> str:
    """Re-execute every step of run `run_id`, as the run page's "Re-execute all" does; returns the new run's id."""
    launched = graphql(base_url, REEXECUTE, {"parentRunId": run_id})["launchPipelineReexecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"re-execution refused: {launched}")
    return launched["run"]["runId"]


def runs_of_job(base_url: str, job_name: str) -> list[dict]:
    """The runs the job's page lists (Jobs > job > Runs), newest first."""
    return graphql(base_url, RUNS_OF_JOB, {"filter": {"pipelineName": job_name}})["runsOrError"]["results"]
