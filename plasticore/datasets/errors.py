"""The one error every loader raises for a bad file: the file, the field, the value, the limit."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data file or data-set name that cannot be used; its message is one line."""

    def __init__(self, path, field_name: str, value, limit: str):
        self.path = str(path)
        self.field = field_name
        self.value = value
        self.limit = limit
        super().__init__(f"{self.path}: {field_name} = {value}: {limit}")
