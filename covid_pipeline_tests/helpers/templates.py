"""The deployment's CloudFormation templates, read with cfn-lint's own loader (so !Ref, !Sub, !ImportValue parse)."""

from functools import cache
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "deploy" / "cloudformation"


@cache
def template(stack: str) -> dict:
    parsed, errors = decode(str(TEMPLATES / f"{stack}.yaml"))
    assert not errors, errors
    return parsed
