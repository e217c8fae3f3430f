"""What the UI shows of the definitions: descriptions are rendered as Markdown, where a bare `<date>` is
taken for an HTML tag and vanishes."""

import re

from covid_pipeline.definitions import defs

# <word> outside a code span (`...`): Markdown passes it through as HTML, and the browser drops it
BARE_TAG = re.compile(r"<[A-Za-z_][^<>]*>")


def code_spans_removed(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_no_description_loses_a_placeholder_to_markdown():
    described = {}
    for node in defs.resolve_asset_graph().asset_nodes:
        described[node.key.to_user_string()] = node.description or ""
    for job in (defs.resolve_job_def("refresh_everything"),):
        described[job.name] = job.description or ""
    assert described["report"]
    eaten = {name: BARE_TAG.findall(code_spans_removed(text)) for name, text in described.items()}
    assert {name: tags for name, tags in eaten.items() if tags} == {}
