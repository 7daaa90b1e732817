"""Write configs/default.yaml from the config dataclasses (every key, its default, type, meaning and range)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emoclf.config import default_yaml  # noqa: E402


def main() -> int:
    path = REPO / "configs" / "default.yaml"
    path.write_text(default_yaml(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
