"""``python -m emoclf``."""
from .cli import main

raise SystemExit(main())
