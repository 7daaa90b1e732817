"""Optional extras: a module imported on first use, or an error that names the extra and its install command."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Type


def require_extra(module: str, extra: str, purpose: str, error: Type[Exception] = ValueError,
                  packages: str = "") -> ModuleType:
    """Import ``module`` (dotted), or raise ``error``: "<purpose> needs <package> (<why>). Install it with: pip
    install 'emoclf[<extra>]'" (``packages``: what the extra installs, named after the command)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" ({packages})" if packages else ""
        raise error(f"{purpose} needs {module.split('.')[0]} ({exc}). Install it with: "
                    f"pip install 'emoclf[{extra}]'{what}.") from None
