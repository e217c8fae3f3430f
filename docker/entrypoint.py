"""Entrypoint of the pipeline image: configuration from Parameter Store, then the real command.

1. `SSM_ENV_PATH` (e.g. `/covid/env`): every parameter directly under it becomes an environment
   variable of the same name (`/covid/env/COVID_RAW_STORE` -> `COVID_RAW_STORE`). The stacks write
   them; variables the task definition sets itself (the ECS `secrets`: passwords) take precedence.
2. `DAGSTER_INSTANCE_TEMPLATE` (webserver and daemon): the deployment dagster.yaml is written to
   `$DAGSTER_HOME/dagster.yaml` with its `${...}` placeholders filled in (see that file for why).
   Run tasks do not need it: the daemon hands each run its instance.
3. exec the command given (`dagster-webserver ...`, `dagster-daemon run`, `dagster api execute_run ...`).

    python entrypoint.py COMMAND [ARG ...]
"""

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def parameters_under(path: str) -> dict[str, str]:
    """The parameters directly under `path`, by their last name segment."""
    import boto3

    pages = boto3.client("ssm").get_paginator("get_parameters_by_path")
    found = {}
    for page in pages.paginate(Path=path, Recursive=False, WithDecryption=True):
        for parameter in page["Parameters"]:
            found[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    return found


def load_parameters(environ: MutableMapping[str, str]) -> None:
    path = environ.get("SSM_ENV_PATH")
    if path:
        for name, value in parameters_under(path).items():
            environ.setdefault(name, value)


def render(template: str, environ: Mapping[str, str]) -> str:
    """`template` with each `${NAME}` replaced; all missing names are reported at once."""
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in environ})
    if missing:
        raise SystemExit(f"entrypoint: environment variable(s) not set: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: environ[match.group(1)], template)


def write_instance(environ: Mapping[str, str]) -> None:
    template = environ.get("DAGSTER_INSTANCE_TEMPLATE")
    if template:
        target = Path(environ["DAGSTER_HOME"]) / "dagster.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(Path(template).read_text(encoding="utf-8"), environ), encoding="utf-8")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    load_parameters(os.environ)
    write_instance(os.environ)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
