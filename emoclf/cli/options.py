"""Command-line options shared by several subcommands, each declared once."""
from __future__ import annotations

import argparse

from emoclf.config import TTA_MODES

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def add_config_args(p: argparse.ArgumentParser, every: bool = False) -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable), and ``--config`` for one experiment file unless ``every``
    (compare declares its own ``--config`` for several files; its ``--set`` applies to each)."""
    if not every:
        p.add_argument("--config", "-c", help="YAML experiment file, e.g. configs/cnn.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help=("override a value in every --config" if every else "override a config value") +
                   " (repeatable), e.g. --set train.epochs=3")


def add_device(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--device``: where the model runs."""
    p.add_argument("--device", default="auto", help=(f"device for {what}: " if what else "") + DEVICES)


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``: machine-readable records on stdout, everything else on stderr."""
    p.add_argument("--json", action="store_true", help="print one JSON record per image (JSON Lines) on stdout")


def add_out(p: argparse.ArgumentParser, default, help_text: str, short: bool = False) -> None:
    """``--out``: where results go (``help_text`` says what, and the default)."""
    names = ("--out", "-o") if short else ("--out",)
    p.add_argument(*names, default=default, help=help_text)


def add_run_choice(p: argparse.ArgumentParser, several: bool, help_text: str) -> None:
    """``--run`` (repeatable for an ensemble when ``several``) and ``--runs-dir`` where the default run is found."""
    p.add_argument("--run", action="append" if several else "store", help=help_text)
    add_runs_dir(p)


def add_runs_dir(p: argparse.ArgumentParser, what: str = "the default run") -> None:
    """``--runs-dir``: the folder of run folders (and comparisons) searched for ``what``."""
    p.add_argument("--runs-dir", default="outputs", help=f"where to look for {what} (default: outputs)")


def add_tta(p: argparse.ArgumentParser, default_text: str) -> None:
    """``--tta [MODE]``: test-time augmentation; alone it means tencrop."""
    p.add_argument("--tta", nargs="?", const="tencrop", choices=list(TTA_MODES),
                   help="test-time augmentation: none, flip, or tencrop (5 crops and their flips; the default of "
                   f"--tta); default: {default_text}")
