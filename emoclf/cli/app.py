"""Command line: parse, load the config, dispatch. Exit codes: 0 ok, 2 bad usage or input, 1 failure."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from emoclf.cli.exits import run_command
from emoclf.cli.help import describe_commands
from emoclf.cli.media import add_explain_parser, add_face_args, add_media_args, detector_of, predict_media, split_media
from emoclf.cli.options import add_config_args, add_device, add_json, add_out, add_run_choice, add_tta
from emoclf.cli.serve import add_serve_parser
from emoclf.cli.tune import add_tune_parser
from emoclf.utils.text import json_line
from emoclf.utils.version import __version__

log = logging.getLogger("emoclf")


def cmd_train(args) -> int:
    from emoclf.config import load_config
    from emoclf.training.trainer import train
    from emoclf.utils.distributed import from_env

    cfg = load_config(args.config, args.overrides)
    run_dir = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if from_env().is_main:  # under torchrun, once
        print(f"Run folder: {run_dir}  (report: {run_dir / 'report.md'})")
    return 0


def cmd_evaluate(args) -> int:
    from emoclf.runs.evaluation import evaluate_run

    if args.face or args.haar:  # through a face crop, or several side by side
        from emoclf.cli.faces import cmd_evaluate_faces

        return cmd_evaluate_faces(args)
    m = evaluate_run(args.run, data=args.data, split=args.split, tta=args.tta, device=args.device, out=args.out)
    print(f"accuracy {m['accuracy']:.4f}  top-2 {m['top2_accuracy']:.4f}  macro F1 {m['f1_macro']:.4f}  "
          f"weighted F1 {m['f1_weighted']:.4f}  loss {m['loss']:.4f}  on {m['num_images']} images")
    print(f"Written to {m['out_dir']}" + ("" if m["tta"] == "none" else f" (test-time augmentation: {m['tta']})"))
    return 0


def cmd_download(args) -> int:
    from emoclf.data.download import download

    result = download(args.source, args.dest, force=args.force, max_gb=args.max_size)
    print(result.summary())
    return 0


def cmd_inspect(args) -> int:
    from emoclf.data.inspect import inspect_dataset

    report = inspect_dataset(args.dir, config=args.config, out=args.out, samples=args.samples)
    print(report.summary())
    return 0


def cmd_compare(args) -> int:
    """emoclf compare: train what is missing, then write the comparison."""
    from pathlib import Path

    from emoclf.comparison.compare import compare
    from emoclf.comparison.seeds import compare_seeds

    if args.seeds is not None:
        if args.runs:
            raise ValueError("--seeds trains each --config file with several seeds; it takes no finished RUN folders.")
        s = compare_seeds(args.config, args.overrides, args.seeds, Path(args.out), args.overwrite, args.device)
    else:
        s = compare(args.runs, args.config, args.overrides, Path(args.out), args.overwrite, args.device)
    width = max(len(r["run"]) for r in s["runs"])
    for r in s["runs"]:
        print(f"{r['run']:<{width}}  accuracy {r['accuracy']:.4f}  macro F1 {r['f1_macro']:.4f}  "
              f"{r['inference_ms_per_image']:.2f} ms/image")
    warned = len(s["warnings"]) + len(s.get("collapsed", []))  # collapsed: runs that predict (nearly) one class
    if warned:
        print(f"{warned} warning(s): see above and in comparison.md")
    print(f"Best model by macro F1: {s['best']['run']} ({s['best']['run_dir']})")
    for row in s.get("seeds", {}).get("configs", []):
        print(f"{row['name']}: macro F1 {row['mean']['f1_macro']:.4f} ± {row['std']['f1_macro']:.4f} over "
              f"{len(row['runs'])} seeds")
    if s.get("seeds"):
        print(f"McNemar's exact test, {s['seeds']['test']['a']} against {s['seeds']['test']['b']}: "
              f"{s['seeds']['test']['verdict']}")
    print(f"Comparison: {Path(s['out_dir']) / 'comparison.md'}")
    return 0


def cmd_predict(args) -> int:
    """emoclf predict: scores per image (and per face with --haar), figures, CSV or JSON Lines; video, webcam."""
    from pathlib import Path

    from emoclf.cli.faces import framing_of
    from emoclf.inference.onnx_predict import make_predictor
    from emoclf.inference.predict import describe_prediction, predict_inputs
    from emoclf.runs.folder import as_run_list, default_run

    images, videos = split_media(args)
    info = sys.stderr if args.json else sys.stdout  # with --json, stdout carries JSON Lines only
    run, why = (args.run, "--run") if args.run else default_run(Path(args.runs_dir))
    runs = as_run_list(run)
    shown = runs[0] if len(runs) == 1 else f"ensemble of {' + '.join(map(str, runs))}"
    framing = framing_of(args)  # --align, --margin, --framing: checked before the model loads
    predictor = make_predictor(runs, args.backend, args.device, detector_of(args), args.margin, args.tta)
    predictor.framing = framing
    print(f"Using run: {shown} ({why})", file=info, flush=True)
    predict_media(args, predictor, videos, info)
    if not images:
        return 0
    emit = (lambda r: print(json_line(r), flush=True)) if args.json else (lambda r: print(describe_prediction(r)))
    s = predict_inputs(predictor, images, Path(args.out), not args.no_figure, emit)
    if s.figures:
        print(f"{len(s.figures)} figure(s) in {args.out}", file=info)
    if s.csv:
        print(f"Scores of every image: {s.csv}", file=info)
    if s.skipped:
        print(f"Skipped {len(s.skipped)} unreadable file(s).", file=info)
    return 0


def cmd_export(args) -> int:
    """emoclf export: a run as an ONNX or TorchScript file with its preprocessing metadata."""
    from emoclf.inference.export import export_run, side_file

    out = export_run(args.run, args.format, args.out, force=args.force)
    print(f"Exported to {out}  (metadata also in {side_file(out)})")
    return 0


def cmd_demo_data(args) -> int:
    from emoclf.data.synthetic import SPANISH, make_dataset

    if args.per_class < 1 or args.size < 8:  # an empty or tiny set would train nothing
        raise ValueError(f"--per-class must be at least 1 and --size at least 8; got {args.per_class} and {args.size}.")

    root = make_dataset(args.dest, classes=args.classes.split(","), train_per_class=args.per_class,
                        val_per_class=max(2, args.per_class // 4), size=args.size, seed=args.seed,
                        names=SPANISH if args.spanish else None)
    print(f"Synthetic dataset written to {root}")
    return 0


def cmd_models(args) -> int:
    from emoclf.models import available_models, registered_models

    names = available_models() if args.all else registered_models()
    print("\n".join(names))
    return 0


def _add_data_commands(sub) -> None:
    """Parsers of the commands that bring in and look at a dataset."""
    p = sub.add_parser("download", help="get a dataset into data/: Drive link or id, URL, archive, folder or "
                       "fer2013.csv")
    p.add_argument("--source", "-s", help="Google Drive link or id, http(s) URL of a zip/tar, local .zip/.tar.gz, "
                   "folder, or FER2013 fer2013.csv (default: the course dataset on Google Drive)")
    p.add_argument("--dest", default="data", help="folder to put the dataset in (default: data)")
    p.add_argument("--force", action="store_true", help="download and unpack again even if already there")
    p.add_argument("--max-size", type=float, metavar="GB", help="refuse archives that unpack to more than this "
                   "(default: $EMOCLF_MAX_EXTRACT_GB or 50)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("inspect", help="look at a dataset: class balance, samples, sizes, unreadable files, "
                       "duplicates, train/validation leakage")
    where = p.add_mutually_exclusive_group()
    where.add_argument("dir", nargs="?", help="dataset folder (default: data, or data.root of --config)")
    where.add_argument("--config", "-c", help="YAML experiment file whose data.root to inspect")
    add_out(p, "outputs/inspect", "report folder (default: outputs/inspect)")
    p.add_argument("--samples", type=int, default=8, help="images per class in the sample grid (default: 8)")
    p.set_defaults(func=cmd_inspect)


def _add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="train missing runs, then compare runs side by side")
    p.add_argument("runs", nargs="*", metavar="RUN", help="finished run folders to compare")
    p.add_argument("--config", "-c", nargs="+", action="extend", default=[], metavar="YAML",
                   help="experiment files; their runs are trained when missing and reused when finished")
    add_config_args(p, every=True)
    p.add_argument("--overwrite", action="store_true", help="retrain runs whose saved config differs")
    p.add_argument("--seeds", type=int, metavar="N", help="train each --config with N seeds (its seed, +1, ...; "
                   "into NAME-seedS, finished runs reused): mean ± std of every metric, and McNemar's exact test "
                   "of the two best on the same validation images")
    add_out(p, "outputs/comparison", "folder for the comparison (default: outputs/comparison)")
    add_device(p, "the inference timing")
    p.set_defaults(func=cmd_compare)


def _add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="emotion scores for images, folders, videos or a webcam, optionally per "
                       "detected face")
    p.add_argument("inputs", nargs="*", metavar="IMAGE|DIR|VIDEO",
                   help="image files, folders (a folder of class folders is read recursively, each image labelled "
                   "by its folder) and/or videos (.mp4 .avi .mov .mkv .webm .m4v)")
    add_run_choice(p, True, "run folder, checkpoint or exported .onnx file (default: best run of the latest "
                   "comparison under --runs-dir, else its newest finished run); repeat it for an ensemble that "
                   "averages the runs' probabilities")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="onnx: run RUN/export/model.onnx "
                   "with onnxruntime, exporting it first when missing (default: torch; a .onnx --run implies onnx)")
    add_face_args(p)
    add_media_args(p)
    add_out(p, "outputs/predictions", "folder for figures and predictions.csv, and per video <name>_pred.csv and "
            "<name>_pred.mp4 (default: outputs/predictions; same-named results are replaced)")
    add_json(p)
    p.add_argument("--no-figure", action="store_true", help="skip the figures and annotated videos (faster)")
    add_tta(p, "the run's train.tta")
    add_device(p)
    p.set_defaults(func=cmd_predict)


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX or TorchScript for use outside emoclf")
    p.add_argument("run", help="run folder (outputs/NAME) or checkpoint file")
    p.add_argument("--format", "-f", choices=["onnx", "torchscript"], default="onnx", help="file format "
                   "(default: onnx)")
    add_out(p, None, "output file (default: RUN/export/model.onnx, or model.pt for torchscript)", short=True)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(prog="emoclf", description="Train, evaluate, compare and run facial-emotion "
                                     "classifiers from a YAML config.")
    parser.add_argument("--version", action="version", version=f"emoclf {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_data_commands(sub)

    p = sub.add_parser("train", help="train one model into outputs/<name>/")
    add_config_args(p)
    both = p.add_mutually_exclusive_group()
    both.add_argument("--resume", action="store_true", help="continue an interrupted run from its last.pt")
    both.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a finished run (or an ensemble of runs) on its validation data or "
                       "any labelled folder")
    p.add_argument("run", nargs="+", metavar="RUN", help="run folder (outputs/NAME) or checkpoint file; several: "
                   "an ensemble that averages their probabilities (same classes; each run reads its own input "
                   "size and colour mode)")
    p.add_argument("--data", help="labelled dataset folder (default: the run's own data)")
    p.add_argument("--split", help="split to score: validation, test or train (default: validation, else test)")
    add_tta(p, "the run's train.tta, as it scored itself (in an ensemble, each run its own)")
    add_out(p, None, "parent folder of the scores (default: RUN/eval, or ensemble-NAME+NAME beside the first run)")
    add_device(p)
    add_face_args(p, several=True)
    p.set_defaults(func=cmd_evaluate)

    _add_compare_parser(sub)
    _add_predict_parser(sub)
    add_explain_parser(sub)
    _add_export_parser(sub)
    add_serve_parser(sub)
    add_tune_parser(sub)

    p = sub.add_parser("demo-data", help="write a small synthetic face dataset (to try emoclf without downloads)")
    p.add_argument("dest", help="folder to write")
    p.add_argument("--classes", default="angry,happy,neutral,sad,surprise", help="comma-separated classes")
    p.add_argument("--per-class", type=int, default=60, help="training images per class")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spanish", action="store_true", help="use the course dataset's Spanish folder names")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("models", help="list model names")
    p.add_argument("--all", action="store_true", help="also every torchvision classifier")
    p.set_defaults(func=cmd_models)
    describe_commands(sub)
    return parser


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``emoclf`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.quiet)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 is printed, never fatal
        getattr(stream, "reconfigure", lambda **_: None)(errors="backslashreplace")
    return run_command(args)
