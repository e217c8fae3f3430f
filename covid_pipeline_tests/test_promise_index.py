"""The index of promises (covid_pipeline_tests/README.md) names only tests that exist: it cannot drift from the
suite unnoticed."""

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_every_test_the_index_names_exists():
    index = (HERE / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+)(?:::(test_\w+))?`", index)
    assert named
    missing = []
    for module, test in named:
        path = HERE / f"{module}.py"
        if not path.is_file():
            missing.append(module)
            continue
        functions = {
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef)
        }
        if test and test not in functions:
            missing.append(f"{module}::{test}")
    assert not missing, missing


# Pages whose promises are not the suite's: the benchmarks' figures (printed by benchmarks/, not asserted), and
# the AWS deployment's page, held by test_deploy*, test_rehearsal and test_metabase_deployment.
NOT_INDEXED = {"docs/performance.md", "deploy/README.md"}


def test_every_page_of_the_documentation_has_a_section_of_the_index():
    """README.md and each page of docs/ is linked from a heading of the index: a page cannot leave it unseen."""
    root = HERE.parent
    index = (HERE / "README.md").read_text(encoding="utf-8")
    linked = {
        (HERE / target).resolve().relative_to(root).as_posix()
        for heading in re.findall(r"^## .*$", index, re.MULTILINE)
        for target in re.findall(r"\]\(([^)#]+)\)", heading)
    }
    pages = {"README.md", *(page.relative_to(root).as_posix() for page in (root / "docs").glob("*.md"))}
    assert pages - NOT_INDEXED - linked == set()
    assert linked <= pages  # a section links a page that exists


def test_every_promise_names_a_test():
    rows = [
        line
        for line in (HERE / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith(("| promise ", "|---"))
    ]
    assert rows
    assert [row for row in rows if not re.search(r"\| [^|]*`test_\w+[^|]*\|$", row)] == []
