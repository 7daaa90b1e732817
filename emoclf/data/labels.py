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


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.strip().lower()
    return re.sub(r"^\d+[\s_\-.]+", "", text)  # "0_angry", "3-happy"


def canonical(name: str) -> str:
    """Canonical label of a folder or class name; unknown names are kept (lower-cased, accents removed)."""
    plain = _plain(name)
    return ALIASES.get(plain, plain)


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
