"""Errors about the input, worded for the person who has to fix it."""


class SourceFormatError(ValueError):
    """The source file cannot be read as the registry: says which file, where, and what to do."""
