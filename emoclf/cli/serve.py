"""emoclf serve: a local web page for predictions and the latest comparison."""
from __future__ import annotations

import argparse
from pathlib import Path

from emoclf.cli.options import add_device, add_runs_dir
from emoclf.serve import DEFAULT_HOST, DEFAULT_PORT


def cmd_serve(args) -> int:
    """Serve the pages until Ctrl+C."""
    from emoclf.serve.server import serve
    from emoclf.serve.service import Service

    service = Service(args.runs, Path(args.runs_dir), args.device, args.margin)
    first = service.runs()[0]
    print(f"Runs offered: {len(service.runs())}, first {first['id']} ({first['why']})", flush=True)

    def ready(url: str) -> None:
        print(f"Serving on {url}  (Ctrl+C stops)", flush=True)

    try:
        serve(service, args.host, args.port, ready)
    except KeyboardInterrupt:
        print("Stopped.")
    return 0


def add_serve_parser(sub) -> None:
    """The serve subcommand."""
    p = sub.add_parser("serve", help="a local web page: upload or take a photo and see each face's emotion "
                       "scores, Grad-CAM and the latest comparison")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run folders or checkpoints to offer, the first chosen "
                   "first (default: every finished run under --runs-dir, the best of the latest comparison first)")
    add_runs_dir(p, "runs and the latest comparison")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s, this machine "
                   "only; 0.0.0.0 lets any machine that reaches this one use the page)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="TCP port (default: %(default)s; 0: any free "
                   "port)")
    p.add_argument("--margin", type=float, default=0.2, help="face crop margin per side, share of the face "
                   "(default %(default)s)")
    add_device(p)
    p.set_defaults(func=cmd_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (use 1-65535, or 0 for any free port)") \
            from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (use 1-65535, or 0 for any free port)")
    return port
