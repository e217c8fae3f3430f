"""Write the deployment dagster.yaml into $DAGSTER_HOME with its `${NAME}` placeholders filled in.

Only the run tasks' subnets and security group are placeholders (see the comment atop dagster.yaml);
a placeholder whose variable is unset stops the container with its name, rather than starting a
daemon that would launch every run into a subnet called "${...}".

    python render_instance.py TEMPLATE [TARGET]      (TARGET defaults to $DAGSTER_HOME/dagster.yaml)
"""

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def render(template: str, environ: Mapping[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in environ})
    if missing:
        raise SystemExit(f"render_instance: environment variable(s) not set: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: environ[match.group(1)], template)


def main(argv: list[str]) -> None:
    if len(argv) not in (1, 2):
        raise SystemExit(__doc__)
    target = Path(argv[1] if len(argv) == 2 else Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(Path(argv[0]).read_text(encoding="utf-8"), os.environ), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
