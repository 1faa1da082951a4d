"""The refusal every stage of the EQL compiler raises: what was refused, and where in the query text."""

from __future__ import annotations

__all__ = ["EqlError"]


class EqlError(ValueError):
    """Query refused; the message names the construct and its line/column."""

    def __init__(self, message: str, text: str = "", position: int = 0) -> None:
        line, column = _line_col(text, position)
        super().__init__(f"{message} at line {line}, column {column}")
        self.position = position
        self.line = line
        self.column = column


def _line_col(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column
