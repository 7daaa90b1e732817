"""How a command ends: errors become one message and an exit code; Ctrl-C and SIGTERM stop it cleanly."""
from __future__ import annotations

import signal
import sys

from emoclf.utils.text import show

MAX_MESSAGE = 2000  # characters of an error message: a huge value in a file must not flood the terminal


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): ended like Ctrl-C, with a message, temporary files removed."""


def _stop_on_sigterm():
    """Turn SIGTERM into :class:`Terminated`; the previous handler, or None where none can be set."""
    def stop(signum, frame):
        raise Terminated()
    try:
        return signal.signal(signal.SIGTERM, stop)
    except (ValueError, AttributeError, OSError):  # not the main thread, or no SIGTERM here
        return None


def run_command(args) -> int:
    """Run the parsed command ``args.func``; its errors become a message and an exit code (0 ok, 2 bad usage or
    input, 1 failure, 130 interrupted, 143 SIGTERM)."""
    previous = _stop_on_sigterm()
    try:
        return args.func(args)
    except Terminated:
        print(f"emoclf {args.command}: stopped by SIGTERM. A training run continues with --resume; nothing "
              f"half-written was left.", file=sys.stderr)
        return 143
    except ModuleNotFoundError as exc:
        package = (exc.name or "emoclf").split(".")[0]
        if package == "emoclf":
            raise
        if package in getattr(sys, "stdlib_module_names", ()):
            print(f"emoclf {args.command}: error: Python's own module '{package}' is missing from {sys.executable} "
                  f"(a Python built without it). Use a complete Python installation.", file=sys.stderr)
            return 2
        print(f"emoclf {args.command}: error: the package '{package}' is missing from {sys.executable}. Install "
              f"emoclf with its dependencies: pip install -e . in the project folder (./run_pipeline.sh does it "
              f"unless --no-install).", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        print(f"emoclf {args.command}: error: {show(exc, False, MAX_MESSAGE)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = {"download": "Nothing half-done was installed; run it again.", "inspect": "No partial report was left.",
                "export": "No partial file was left.", "tune": "Run it again: the study continues."}.get(
            args.command, "A training run continues with --resume.")
        print(f"emoclf {args.command}: interrupted. {hint}", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"emoclf {args.command}: failed: {show(exc, False, MAX_MESSAGE)}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
