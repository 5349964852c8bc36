"""The annotation formats the installed converters offer (plugins/converters.py)."""

from __future__ import annotations

from typing import Literal

from graph.domain.errors import InvalidInput
from graph.domain.platform import Platform
from plugins.converters import ConverterType

__all__ = ["converter_for", "format_names"]

Way = Literal["read", "write"]
_WORDS = {"read": "import from", "write": "export to"}


def format_names(platform: Platform, way: Way) -> list[str]:
    """The formats that can be read (imported) or written (exported)."""
    converters = platform.plugins.converters
    return sorted(name for name, c in converters.items() if getattr(c, way) is not None)


def converter_for(platform: Platform, name: str, way: Way) -> ConverterType:
    converter = platform.plugins.converters.get(name)
    if converter is None or getattr(converter, way) is None:
        known = ", ".join(format_names(platform, way))
        raise InvalidInput(f"no format {name!r} to {_WORDS[way]}; formats: {known}", field="format")
    return converter
