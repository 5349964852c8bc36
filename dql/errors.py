"""DQL errors: every problem with a query is a :class:`DQLError` that says what and where."""

from __future__ import annotations

__all__ = ["DQLError", "DQLFieldError", "DQLSyntaxError", "DQLTypeError"]


class DQLError(ValueError):
    """A query that cannot be run as written. ``message`` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DQLSyntaxError(DQLError):
    """The text does not parse: where (1-based line and column), what was found and expected."""

    def __init__(
        self,
        message: str,
        *,
        line: int,
        column: int,
        found: str | None = None,
        expected: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.found = found
        self.expected = expected


class DQLFieldError(DQLError):
    """A field the resource does not have (or cannot be used that way)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class DQLTypeError(DQLError):
    """A value of the wrong type for its field, e.g. ``width > "abc"``."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
