"""Number and table formatting shared by the results renderers."""

from __future__ import annotations

import math
from typing import Any

DASH = "\u2013"  # en dash: not measured


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: Any, b: Any) -> str:
    try:
        value = a / b
    except (TypeError, ZeroDivisionError):
        return DASH
    return f"{value:.2f}x" if math.isfinite(value) else DASH


def get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
