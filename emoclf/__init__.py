"""emoclf: train, evaluate, compare and run facial-emotion classifiers from a YAML config.

The Python API (docs/api.md)::

    import emoclf
    run = emoclf.train("configs/cnn.yaml", overrides={"data.root": "my_faces"})
    print(emoclf.evaluate(run)["f1_macro"])
    print(emoclf.Predictor(run, face="haar").predict("photo.jpg")["label"])

Its names are imported on first use (``emoclf.api``), so that ``import emoclf`` stays light and the ONNX
prediction path never imports torch.
"""
from emoclf.utils.version import __version__

API = ("train", "evaluate", "compare", "load_run", "Predictor", "make_config")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from emoclf import api

        return getattr(api, name)
    raise AttributeError(f"module 'emoclf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(API))
