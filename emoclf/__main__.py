"""``python -m emoclf``."""
from emoclf.cli.app import main

raise SystemExit(main())
