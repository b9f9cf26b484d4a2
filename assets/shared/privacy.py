"""Masking personal data before it leaves the warehouse for logs or Dagster metadata.

Which columns hold personal data is declared once, as `pii: true` in schemas/
(read by assets.shared.catalog.personal_columns); values of those columns go through `mask`.
"""

from __future__ import annotations


def mask(value: object) -> str:
    """Keep a value's shape, hide its content: 'john.smith@gmail.com' -> 'j******************m'.

    Short values are hidden whole; numbers and dates are masked like text, since a
    birth date or phone number is personal data too.
    """
    if value is None:
        return "null"
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 2) + text[-1]


def mask_sql(expression: str) -> str:
    """The SQL twin of `mask` over a varchar expression (null stays null), for set-based code."""
    return (
        f"case when length({expression}) <= 4 then repeat('*', length({expression})) "
        f"else left({expression}, 1) || repeat('*', length({expression}) - 2) || right({expression}, 1) end"
    )
