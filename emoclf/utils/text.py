"""Text for messages: values shown cut short, and "did you mean" suggestions."""
from __future__ import annotations

import difflib
import json
import math
from typing import Any, Iterable


def show(value: Any, quoted: bool = True, width: int = 80) -> str:
    """A value for an error message, cut short: a hostile config must not make the message huge."""
    text = repr(value) if quoted else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest known name, or '' when none is close."""
    if len(name) > 100:
        return ""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite number replaced by None (null): JSON has no NaN, and a reader of
    ``--json`` output must be able to parse every line."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def json_line(value: Any) -> str:
    """One line of valid JSON (NaN and infinities written as null)."""
    return json.dumps(finite_json(value), allow_nan=False)
