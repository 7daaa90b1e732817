"""Safe, bounded YAML reading for configs: plain YAML only, limited in size and alias expansion."""
from __future__ import annotations

import os
import stat
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


def read_text_bounded(path: Path, limit: int = MAX_YAML_BYTES, what: str = "Config file") -> str:
    """A small text file read safely: a regular file only (a FIFO or device such as /dev/zero is refused before
    it is read, so it can neither hang nor grow without bound), checked in size first, and read up to the limit."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}. Pass an existing file, e.g. --config "
                                f"configs/cnn.yaml.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what} {path} is a folder; pass a YAML file, e.g. --config configs/cnn.yaml.")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {path} is not a regular file (a pipe, socket or device); pass a YAML file, e.g. "
                         f"--config configs/cnn.yaml.")
    if st.st_size > limit:
        raise ValueError(f"{what} {path} is {st.st_size} bytes; a config is far smaller (limit {limit}). Is it the "
                         f"right file?")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)  # non-blocking: a FIFO swapped in after the check still cannot hang the open
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError(f"{what} {path} is not a regular file; pass a YAML file.")
        data = fh.read(limit + 1)  # a file growing after the check is still read only up to the limit
    if len(data) > limit:
        raise ValueError(f"{what} {path} is over {limit} bytes; a config is far smaller. Is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping safely (no object-building tags, bounded size, a regular file only); a file holding
    anything but a mapping (a list, a number) is refused with its name."""
    text = read_text_bounded(Path(path))
    data = safe_yaml(text, f"Config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Config file {path} holds a YAML {type(data).__name__}, not a mapping of sections "
                         f"(data:, model:, train:, ...). Fix the file, e.g. from configs/default.yaml.")
    return data
