"""Reading a config: defaults < YAML file < ``--set section.key=value``, checked; and writing it back."""
from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path
from typing import Any, List, Optional

import yaml

from emoclf.config.checks import coerce, validate
from emoclf.config.fields import SECTION_CLASSES, SECTIONS, Config, rules
from emoclf.utils.text import did_you_mean
from emoclf.utils.text import show as _show
from emoclf.utils.yamlio import read_yaml, safe_yaml

log = logging.getLogger(__name__)


def _merge_section(section: str, obj: Any, values: Any) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"Section '{section}' must be a mapping of keys to values; got {_show(values)}.")
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in hints:
            if key in ("seed",):  # a top-level key written inside a section
                raise ValueError(f"Unknown key '{section}.{key}': '{key}' is a top-level key, not part of a section. "
                                 f"Write `{key}: VALUE` at the top level of the file, or --set {key}=VALUE.")
            raise ValueError(f"Unknown key '{section}.{_show(key, False)}'.{did_you_mean(str(key), hints)} "
                             f"Known keys in '{section}': {', '.join(hints)}.")
        choices = rules(section, key).get("choices")
        if isinstance(value, bool) and choices:  # YAML 1.1 reads on/off, yes/no as booleans
            if ("on" if value else "off") not in choices:
                raise ValueError(f"{section}.{key} must be one of {', '.join(choices)}; got {value} (YAML reads "
                                 f"on/off, yes/no and true/false as true or false).")
            value = "on" if value else "off"
        setattr(obj, key, coerce(f"{section}.{key}", value, hints[key]))


def merge(cfg: Config, values: dict) -> Config:
    """Merge a nested mapping (as read from YAML) into ``cfg`` in place, checking names and types."""
    if not isinstance(values, dict):
        raise ValueError(f"A config must be a mapping of sections; got {type(values).__name__}.")
    for section, sub in values.items():
        if section == "seed":
            cfg.seed = coerce("seed", sub, int)
        elif section in SECTIONS:
            _merge_section(section, getattr(cfg, section), sub)
        else:
            known = list(SECTIONS) + ["seed"]
            raise ValueError(f"Unknown section '{_show(section, False)}'.{did_you_mean(str(section), known)} "
                             f"Known sections: {', '.join(known)}.")
    return cfg


def _yaml_end(raw: str) -> int:
    """Where YAML stops reading ``raw``: the end of its last token (a comment, ' #...', is no token)."""
    try:
        tokens = list(yaml.scan(raw))
    except yaml.YAMLError:
        return len(raw)  # the parse itself reports the error
    return max([t.end_mark.index for t in tokens if not isinstance(t, yaml.StreamEndToken)] or [0])


def _is_text_key(parts: List[str]) -> bool:
    """Whether ``section.key`` holds a string (plain or optional): its --set value is the text as typed."""
    cls = SECTION_CLASSES.get(parts[0]) if len(parts) == 2 else None
    hint = typing.get_type_hints(cls).get(parts[1]) if cls else None
    return hint is str or hint == Optional[str]


def parse_override(text: str) -> dict:
    """Turn ``section.key=value`` into ``{section: {key: value}}``; the value is parsed as YAML.

    A value is never cut short: where YAML would drop part of it as a comment (`` #...``), a text key keeps the
    whole text and any other key is refused. A text key also keeps words YAML reads as other types (``yes``,
    ``1e3``) as typed; ``null`` (or nothing) still means null."""
    if "=" not in text:
        raise ValueError(f"--set expects section.key=value, got {_show(text)}.")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    typed = raw.strip()
    value = safe_yaml(raw, f"--set {_show(text)}: the value") if typed else None
    if typed and _yaml_end(raw) < len(raw.rstrip()):  # YAML read a comment: part of the value would be lost
        if not (_is_text_key(parts) and (value is None or isinstance(value, str))):
            raise ValueError(f"--set {_show(text)}: YAML reads ' #' as the start of a comment, so only "
                             f"{_show(value)} would be used. Remove the ' #...' part, or quote the value when the '#' "
                             f"belongs to it (--set '{dotted.strip()}=\"...\"').")
        log.warning("--set %s: using the whole value %s ('#' is part of it, not a YAML comment)", dotted.strip(),
                    _show(typed))
        value = typed
    elif _is_text_key(parts) and not rules(*parts).get("choices") and not isinstance(
            value, (str, type(None), list, dict)):
        value = typed  # output.name=yes is the folder 'yes', not True
    if parts == ["seed"]:
        return {"seed": value}
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--set expects section.key=value (e.g. train.epochs=3), got {_show(text)}.")
    return {parts[0]: {parts[1]: value}}


def load_config(path: Optional[str] = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Build a validated config from defaults, an optional YAML file and ``--set`` overrides."""
    cfg = Config()
    if path is not None:
        values = read_yaml(Path(path))
        try:
            merge(cfg, values)
        except ValueError as exc:  # name the file: a comparison reads several
            raise ValueError(f"{path}: {exc}") from None
        if cfg.output.name is None:
            cfg.output.name = Path(path).stem
    for text in overrides:
        merge(cfg, parse_override(text))
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    """Plain nested dict of the config."""
    return dataclasses.asdict(cfg)


def from_dict(values: dict) -> Config:
    """Config from a plain nested dict (as saved in a run folder or checkpoint)."""
    cfg = merge(Config(), values)
    validate(cfg)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML."""
    from emoclf.utils.files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
