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
