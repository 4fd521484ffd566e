"""Cells of the CSV files staff open in a spreadsheet."""

from __future__ import annotations

# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: a formula gets a leading quote;
    None is empty."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text
