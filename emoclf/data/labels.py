"""Emotion label aliases: many datasets' folder names map to one canonical English label set."""
from __future__ import annotations

import re
import unicodedata
from typing import Dict, Iterable, List

# Canonical order: FER2013's (alphabetical) seven, then CK+/AffectNet's contempt.
CANONICAL = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt"]

_ALIASES = {
    "angry": ["anger", "enojo", "enojado", "enfado", "ira", "rabia", "mad", "wut"],
    "disgust": ["disgusted", "disgusto", "asco"],
    "fear": ["fearful", "afraid", "scared", "miedo", "temor"],
    "happy": ["happiness", "joy", "alegria", "feliz", "felicidad", "smile", "smiling"],
    "neutral": ["neutrality", "calm", "seriedad", "neutro", "neutralidad", "serio"],
    "sad": ["sadness", "tristeza", "triste"],
    "surprise": ["surprised", "sorpresa", "sorprendido", "asombro"],
    "contempt": ["desprecio", "contemptuous"],
}

ALIASES: Dict[str, str] = {name: name for name in CANONICAL}
ALIASES.update({alias: name for name, aliases in _ALIASES.items() for alias in aliases})


def _strip_prefix(text: str) -> str:
    return re.sub(r"^\d+[\s_\-.]+", "", text)  # "0_angry", "3-happy"


def _plain(text: str) -> str:
    """A name as the class name it stands for: Unicode-normalized (NFKC: one form for one text, full-width letters
    as ASCII), lower-cased, without a "3_" order prefix; Latin accents dropped (alegría is alegria), and any other
    script (喜び, счастье) kept as written."""
    text = _strip_prefix(unicodedata.normalize("NFKC", text).strip().casefold())
    decomposed = unicodedata.normalize("NFKD", text)
    unaccented = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unaccented if unaccented.isascii() else text


def canonical(name: str) -> str:
    """Canonical label of a folder or class name; unknown names are kept as the class name (Unicode-normalized,
    lower-cased, Latin accents removed)."""
    plain = _plain(name)
    return ALIASES.get(plain, plain)


def check_folder_names(names: Iterable[str], where: str) -> None:
    """Refuse class folders whose names give no class (``___``) or give one class without being aliases of each
    other (``Foo`` and ``foo``, ``1_x`` and ``x``): merging them silently would mix two sets of images. Folders that
    are aliases of a known emotion (happy/, alegria/) are merged as usual."""
    by_label: Dict[str, List[str]] = {}
    for name in names:
        label = canonical(name)
        if not label:
            raise ValueError(f"Class folder {where}/{name} gives no class name once normalized; rename it "
                             f"(e.g. to happy or another label).")
        by_label.setdefault(label, []).append(name)
    for label, found in by_label.items():
        if len(found) > 1 and label not in CANONICAL:
            raise ValueError(f"Class folders {', '.join(repr(f) for f in sorted(found))} in {where} all mean the "
                             f"class '{label}' but are not known aliases of each other; merge them into one folder "
                             f"or rename one.")


def ordered(names: Iterable[str]) -> List[str]:
    """Canonical labels in the stable order: known emotions first, then others alphabetically."""
    unique = set(names)
    known = [n for n in CANONICAL if n in unique]
    return known + sorted(unique - set(CANONICAL))


def merge_counts(counts: Dict[str, int]) -> Dict[str, int]:
    """Counts per folder name summed per canonical label (alegria/ and happy/ both count as happy)."""
    merged: Dict[str, int] = {}
    for name, n in counts.items():
        label = canonical(name)
        merged[label] = merged.get(label, 0) + n
    return merged
