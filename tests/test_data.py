"""Discovery, label aliases, splits, decoding of odd images, and the decoded-image cache."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from emoclf.config import DataConfig
from emoclf.data import labels
from emoclf.data.dataset import discover, epoch_order, labelled_split, load_split, resolve_root, stratified_split
from emoclf.data.imaging import load_array
from emoclf.data.synthetic import SPANISH, make_dataset


def test_aliases_map_every_naming_scheme_to_one_label_set():
    spanish = [labels.canonical(n)
               for n in ("alegria", "disgusto", "enojo", "miedo", "seriedad", "sorpresa", "tristeza")]
    fer = [labels.canonical(n) for n in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")]
    ck = [labels.canonical(n)
          for n in ("anger", "disgusted", "fearful", "happiness", "neutral", "sadness", "surprised")]
    assert sorted(spanish) == sorted(fer) == sorted(ck) == labels.CANONICAL[:7]
    assert labels.canonical("Alegría") == "happy" and labels.canonical("3_Happy") == "happy"
    assert labels.ordered(["surprise", "zzz", "angry", "contempt"]) == ["angry", "surprise", "contempt", "zzz"]


def test_spanish_folders_and_drop_classes(tmp_path):
    root = make_dataset(tmp_path, classes=("angry", "disgust", "happy"), train_per_class=4, val_per_class=2,
                        names=SPANISH, size=24)
    ds = discover(DataConfig(root=str(root), drop_classes=["disgust"]), seed=0)
    assert ds.class_names == ["angry", "happy"]
    assert len(ds.splits["train"]) == 8 and len(ds.splits["validation"]) == 4
    ds = discover(DataConfig(root=str(root), drop_classes=["asco"]), seed=0)  # any alias names the class
    assert ds.class_names == ["angry", "happy"]


def test_misspelt_drop_class_is_an_error_not_a_silent_no_op(tmp_path):
    root = make_dataset(tmp_path, classes=("angry", "happy", "sad"), train_per_class=2, val_per_class=1, size=24)
    with pytest.raises(ValueError, match=r"drop_classes names 'digust'.*Did you mean 'disgust'\?"):
        discover(DataConfig(root=str(root), drop_classes=["digust"]), seed=0)
    ds = discover(DataConfig(root=str(root), drop_classes=["contempt", "sad"]), seed=0)  # a known emotion: fine
    assert ds.class_names == ["angry", "happy"]
    cfg = DataConfig(root=str(root), drop_classes=["digust"])  # as saved in a run trained before this check:
    ev, _ = labelled_split(root, None, ["angry", "happy", "sad"], cfg, 0, own_data=True)  # still scored
    assert len(ev) == 3


def test_stratified_split_when_no_validation_folder(tmp_path):
    root = make_dataset(tmp_path, classes=("angry", "happy", "sad"), train_per_class=20, val_dir=None, size=24)
    ds = discover(DataConfig(root=str(root), val_fraction=0.25), seed=3)
    assert ds.val_from_train
    val = ds.splits["validation"]
    assert np.bincount(val.labels).tolist() == [5, 5, 5]
    assert not set(map(str, val.paths)) & set(map(str, ds.splits["train"].paths))
    again = discover(DataConfig(root=str(root), val_fraction=0.25), seed=3)
    assert again.splits["validation"].paths == val.paths  # seeded


def test_stratified_split_keeps_one_of_each_class_in_train():
    tr, va = stratified_split(np.array([0, 0, 1, 1, 1, 2]), 0.5, seed=0)
    assert sorted(np.r_[tr, va].tolist()) == list(range(6))
    assert 5 in tr  # a class with one image stays in train


def test_wrapping_folder_is_followed(tmp_path):
    make_dataset(tmp_path / "datos_zip" / "dataset_emociones", classes=("angry", "happy"), train_per_class=2,
                 val_per_class=1, size=16)
    assert resolve_root(tmp_path) == tmp_path / "datos_zip" / "dataset_emociones"


def _odd_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("CMYK", (30, 20), (0, 50, 100, 0)).save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16)).save(folder / "deep.png")
    Image.new("P", (20, 30)).save(folder / "palette.gif")
    Image.new("RGBA", (20, 20), (255, 0, 0, 128)).save(folder / "alpha.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.png").write_bytes((folder / "alpha.png").read_bytes()[:40])
    (folder / "notes.txt").write_text("not an image")


def test_odd_and_broken_images_are_decoded_or_skipped_with_a_count(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=5, val_per_class=2, size=24)
    _odd_images(root / "train" / "angry")
    cfg = DataConfig(root=str(root), image_size=16, cache_dir=str(tmp_path / "cache"))
    ds = discover(cfg, seed=0)
    assert ds.non_images == 1
    split = load_split(ds.splits["train"], cfg, ds.root, "train")
    assert len(split.skipped) == 2  # empty and truncated
    assert {p.rsplit("/", 1)[-1] for p, _ in split.skipped} == {"empty.jpg", "truncated.png"}
    assert len(split) == 10 + 4 and split.images.shape == (14, 1, 16, 16)
    assert "Skipped 2 unreadable image(s)" in caplog.text


def test_aspect_is_padded_or_cropped_never_stretched(tmp_path):
    img = np.zeros((20, 40), dtype=np.uint8)
    img[:, 10:30] = 255  # a white square in the middle of a wide image
    Image.fromarray(img).save(tmp_path / "wide.png")
    padded = load_array(tmp_path / "wide.png", 20, True, "pad")[0]
    cropped = load_array(tmp_path / "wide.png", 20, True, "crop")[0]
    assert padded[:4].max() == 0 and padded[10, 10] == 255  # letterbox bars above and below
    assert cropped.min() == 255  # the centre square fills the crop
    assert padded[10, 2] == 0 and padded[10, 17] == 0  # the square kept its shape: half the width


def test_cache_is_rebuilt_when_new_content_keeps_the_old_size_and_time(tmp_path):
    """``cp -p``, rsync and unzip restore modification times; same-size formats then look unchanged by size and time."""
    import os
    import time

    from emoclf.data.cache import load_images

    paths = [tmp_path / f"{i}.bmp" for i in range(3)]
    for i, p in enumerate(paths):
        Image.new("L", (8, 8), 10 * i).save(p)
    first, _ = load_images(paths, 8, True, "pad", tmp_path / "cache")
    before = os.stat(paths[1])
    time.sleep(0.05)  # file times tick in steps of a few milliseconds
    Image.new("L", (8, 8), 200).save(paths[1])
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(paths[1])
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again, _ = load_images(paths, 8, True, "pad", tmp_path / "cache")
    assert first[1].max() == 10 and again[1].max() == 200

def test_cache_is_reused_and_rebuilt_when_settings_change(tmp_path):
    root = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=3, val_per_class=1, size=24)
    cache = tmp_path / "cache"
    ds = discover(DataConfig(root=str(root)), 0)
    a = load_split(ds.splits["train"], DataConfig(root=str(root), image_size=16, cache_dir=str(cache)), ds.root, "t")
    files = sorted(cache.glob("*.npy"))
    b = load_split(ds.splits["train"], DataConfig(root=str(root), image_size=16, cache_dir=str(cache)), ds.root, "t")
    assert sorted(cache.glob("*.npy")) == files and np.array_equal(a.images, b.images)
    c = load_split(ds.splits["train"], DataConfig(root=str(root), image_size=20, cache_dir=str(cache)), ds.root, "t")
    assert len(list(cache.glob("*.npy"))) == 2 and c.images.shape[-1] == 20
    direct = load_array(ds.splits["train"].paths[0], 16, True, "pad")
    assert np.array_equal(a.images[0], direct)


def test_epoch_order_is_seeded_and_balanced_sampler_evens_classes():
    labels_ = np.array([0] * 90 + [1] * 10)
    assert np.array_equal(epoch_order(labels_, 3, 7, False), epoch_order(labels_, 3, 7, False))
    assert not np.array_equal(epoch_order(labels_, 3, 7, False), epoch_order(labels_, 4, 7, False))
    drawn = labels_[epoch_order(labels_, 0, 7, True)]
    assert 0.35 < drawn.mean() < 0.65


@pytest.mark.parametrize("problem, message", [
    ("missing", "does not exist"),
    ("empty_class", "has no images"),
    ("extra_val_class", "classes that train lacks: sad"),
    ("one_class", "at least 2 classes"),
])
def test_bad_datasets_get_one_clear_error(tmp_path, problem, message):
    root = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=2, val_per_class=1, size=16)
    if problem == "missing":
        root = tmp_path / "nope"
    elif problem == "empty_class":
        (root / "train" / "fear").mkdir()
    elif problem == "extra_val_class":
        make_dataset(tmp_path / "x", classes=("sad",), train_per_class=0, val_per_class=1, size=16)
        (tmp_path / "x" / "validation" / "sad").rename(root / "validation" / "sad")
    elif problem == "one_class":
        for p in (root / "train" / "happy").iterdir():
            p.unlink()
        (root / "train" / "happy").rmdir()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        discover(DataConfig(root=str(root)), 0)
