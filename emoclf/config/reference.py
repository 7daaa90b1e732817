"""configs/default.yaml: every key with its default, type, meaning and allowed values, from the fields."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, List

import yaml

from emoclf.config.fields import SECTIONS, Config, allowed, rules


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or null"
    if typing.get_origin(hint) in (list, List):
        return f"list of {_type_name(args[0])}"
    return getattr(hint, "__name__", str(hint))


def _yaml_line(key: str, value: Any, hint: Any, meta: dict, indent: str) -> str:
    text = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()[1:-1]
    limits = allowed(meta)
    if limits and not meta.get("choices"):
        limits = f"range {limits}"
    doc = f"{_type_name(hint)}: {meta['doc']}" + (f"; {limits}" if limits else "")
    return f"{indent}{text}  # {doc}"


def default_yaml() -> str:
    """configs/default.yaml: every key with its default, type, meaning and allowed values."""
    lines = ["# Every config key with its default, type, meaning and allowed values; generated from the dataclasses of",
             "# emoclf/config/fields.py by scripts/write_default_config.py (edit them there, not this file).",
             "# Precedence: these defaults < your YAML file < --set section.key=value on the command line.", ""]
    cfg = Config()
    for section in SECTIONS:
        obj = getattr(cfg, section)
        hints = typing.get_type_hints(type(obj))
        lines.append(f"{section}:")
        for f in dataclasses.fields(obj):
            lines.append(_yaml_line(f.name, getattr(obj, f.name), hints[f.name], dict(f.metadata), "  "))
    lines += ["", _yaml_line("seed", cfg.seed, int, rules("", "seed"), "")]
    return "\n".join(lines) + "\n"
