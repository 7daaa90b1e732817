"""What each `emoclf COMMAND --help` page says above and below its options: a one-line description and examples."""
from __future__ import annotations

import argparse
import textwrap

# command -> (what it does, in one line; examples, one per line)
PAGES = {
    "download": ("Get a dataset into data/ (the course dataset by default) and record where it is, so that train "
                 "finds it.",
                 "emoclf download\nemoclf download --source ~/Downloads/course.zip\n"
                 "emoclf download --source fer2013.csv --dest data/fer2013"),
    "inspect": ("Look at a dataset before training: classes, samples, image sizes, unreadable files, duplicates "
                "and train/validation leakage, written to outputs/inspect/.",
                "emoclf inspect\nemoclf inspect data/course --samples 12\nemoclf inspect --config configs/cnn.yaml"),
    "train": ("Train one model from a YAML config into a run folder outputs/<name>/ (report.md, figures, metrics, "
              "best.pt).",
              "emoclf train --config configs/cnn.yaml\n"
              "emoclf train -c configs/resnet18.yaml --set model.pretrained=false --set train.epochs=5\n"
              "emoclf train -c configs/cnn.yaml --resume"),
    "evaluate": ("Score a finished run (or several, averaged) on its validation data or any labelled folder, "
                 "with every metric and figure.",
                 "emoclf evaluate outputs/cnn\nemoclf evaluate outputs/cnn --data my_photos --tta flip\n"
                 "emoclf evaluate outputs/cnn outputs/resnet18"),
    "compare": ("Train the runs that are missing, then compare runs side by side in outputs/comparison/"
                "comparison.md.",
                "emoclf compare --config configs/cnn.yaml configs/resnet18.yaml configs/mobilenet_v3.yaml\n"
                "emoclf compare outputs/cnn outputs/resnet18"),
    "predict": ("Emotion scores for photos, folders, videos or a webcam, with a figure per image; --haar finds "
                "the faces first.",
                "emoclf predict photo.jpg\nemoclf predict photos/ --haar --run outputs/resnet18\n"
                "emoclf predict clip.mp4 --haar"),
    "explain": ("Grad-CAM: where in the face the model looked for its answer, one heat map per face.",
                "emoclf explain photo.jpg --haar\nemoclf explain photo.jpg --run outputs/cnn"),
    "export": ("Export a run to ONNX or TorchScript with its preprocessing inside, for use without emoclf.",
               "emoclf export outputs/cnn\nemoclf export outputs/cnn --format torchscript"),
    "tune": ("Search config values with Optuna (resumable); the best config is written as YAML.",
             "emoclf tune --config configs/cnn.yaml --trials 20"),
    "serve": ("A local web page (127.0.0.1) for predictions on photos or a webcam and the latest comparison.",
              "emoclf serve\nemoclf serve outputs/cnn --port 8000"),
    "demo-data": ("Write a small generated dataset of drawn faces, to try emoclf without any download.",
                  "emoclf demo-data data/demo\nemoclf demo-data data/demo --spanish --per-class 30"),
    "models": ("List the model names that model.name accepts.", "emoclf models\nemoclf models --all"),
}


def describe_commands(sub) -> None:
    """Give every subcommand's --help page its description and examples (from its one-line help otherwise)."""
    for name, parser in sub.choices.items():
        text, examples = PAGES.get(name, (None, None))
        parser.description = parser.description or (textwrap.fill(text, 100) if text else None)
        if examples and not parser.epilog:
            parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples.splitlines())
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
