"""Safe, bounded YAML reading for configs: plain YAML only, limited in size and alias expansion."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emoclf.utils.text import show

# A config is a few hundred bytes of a few dozen values; anything far bigger is a mistake or an attack
# (e.g. "billion laughs": nested aliases that expand to billions of values).
MAX_YAML_BYTES = 1_000_000
MAX_YAML_VALUES = 10_000


def _check_expansion(data: Any, where: str) -> None:
    # Aliases make shared (even self-referencing) structures: count every visit, stop at the limit.
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise ValueError(f"{where} expands to more than {MAX_YAML_VALUES} values (YAML aliases repeated or "
                             f"nested?); a config holds a few dozen. Write the values out plainly.")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key written twice in one mapping."""


class _SafeUniqueLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in lines:
                        raise _DuplicateKey(
                            None, None, f"found the key {show(key)} twice (lines {lines[key] + 1} and "
                            f"{key_node.start_mark.line + 1}); the second would silently replace the first. "
                            f"Write each key once (merge the two sections)", key_node.start_mark)
                    lines[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def safe_yaml(text: str, where: str) -> Any:
    """Parse plain YAML (``yaml.safe_load``'s loader: no tags that build objects), bounded in size and expansion,
    with each key once per mapping."""
    if len(text) > MAX_YAML_BYTES:
        raise ValueError(f"{where} is {len(text)} characters long; a config is far smaller (limit "
                         f"{MAX_YAML_BYTES}). Is it the right file?")
    try:
        data = yaml.load(text, Loader=_SafeUniqueLoader)
    except _DuplicateKey as exc:
        raise ValueError(f"{where}: {exc.problem}.") from None
    except yaml.constructor.ConstructorError as exc:
        if "tag" in str(exc.problem or ""):
            raise ValueError(f"{where} uses a YAML tag that builds objects ({show(exc.problem, False, 160)}). "
                             f"emoclf reads plain YAML only (yaml.safe_load): remove the tag.") from None
        raise ValueError(f"{where} is not valid YAML: {show(exc, False, 300)}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{where} is not valid YAML: {show(exc, False, 300)}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, or deep nesting
        raise ValueError(f"{where} is not a usable YAML document ({type(exc).__name__}: "
                         f"{show(exc, False, 160)}).") from None
    _check_expansion(data, where)
    return data


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping safely (no object-building tags, bounded size)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"Config file not found: {path}. Pass an existing file, e.g. --config "
                                f"configs/cnn.yaml.") from None
    except IsADirectoryError:
        raise ValueError(f"Config file {path} is a folder; pass a YAML file, e.g. --config configs/cnn.yaml.") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"Config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    data = safe_yaml(text, f"Config file {path}")
    return data if data is not None else {}
