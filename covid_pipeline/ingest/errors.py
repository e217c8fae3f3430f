"""Errors about the input, worded for the person who has to fix it, and the rows set aside for them."""

from dataclasses import dataclass


class SourceFormatError(ValueError):
    """The source file cannot be read as the registry: says which file, where, and what to do."""


@dataclass
class Reject:
    """A row that was not loaded: its physical line, the column at fault (None: the whole row), why, its text."""

    line_number: int
    column_name: str | None
    reason: str
    raw_line: str
