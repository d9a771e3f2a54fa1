"""The JSON report: the findings document itself, valid against ``msl schema``."""

from __future__ import annotations

from msl.findings import FindingsDocument
from msl.reporters import ReportOptions, reporter


@reporter("json", ".json")
def render_json(doc: FindingsDocument, options: ReportOptions) -> str:
    """The findings document (the sharing format; see `msl schema`)."""
    return doc.model_dump_json(indent=2) + "\n"
