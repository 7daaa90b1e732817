"""Batch augmentation: shapes, determinism, flips, and nothing at evaluation."""
from __future__ import annotations

import pytest
import torch

from emoclf.config import AugmentConfig
from emoclf.data.augment import BatchAugment, Normalizer, norm_stats


def _batch():
    x = torch.zeros(8, 1, 16, 16, dtype=torch.uint8)
    x[:, :, :, :4] = 255  # bright stripe on the left
    return x


def test_normalizer_matches_manual_formula():
    norm = Normalizer(*norm_stats(True, None, None), torch.device("cpu"))
    out = norm(_batch())
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor((1 - 0.449) / 0.226))
    assert torch.allclose(out[0, 0, 0, 10], torch.tensor((0 - 0.449) / 0.226))


def test_flip_only_moves_the_stripe_for_some_images():
    aug = BatchAugment(AugmentConfig(hflip=True, rotation=0, translate=0, scale=0, brightness=0, contrast=0, erasing=0))
    norm = Normalizer([0.0], [1.0], torch.device("cpu"))
    out = aug(_batch(), norm, torch.Generator().manual_seed(0))
    left = out[:, 0, :, :4].mean((1, 2))
    right = out[:, 0, :, -4:].mean((1, 2))
    flipped = right > left
    assert 0 < int(flipped.sum()) < 8
    assert torch.all((left == 1) | (right == 1))


def test_augmentation_is_seeded_and_keeps_shape():
    aug = BatchAugment(AugmentConfig())
    norm = Normalizer([0.5], [0.5], torch.device("cpu"))
    a = aug(_batch(), norm, torch.Generator().manual_seed(1))
    b = aug(_batch(), norm, torch.Generator().manual_seed(1))
    c = aug(_batch(), norm, torch.Generator().manual_seed(2))
    assert a.shape == (8, 1, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_crops_draw_after_the_other_augmentations_in_one_draw():
    """A run with augment.crop draws the other augmentations' numbers as a run without it (two more rows after
    them, in the same single draw per batch), and the output is crop-sized."""
    seen = []
    aug = BatchAugment(AugmentConfig(crop=12))
    plain = BatchAugment(AugmentConfig())
    for a in (aug, plain):
        draw = a._draw
        a._draw = lambda n, gen, device, rows=BatchAugment.DRAWS, draw=draw: seen.append(draw(n, gen, device, rows)) \
            or seen[-1]
    norm = Normalizer([0.5], [0.5], torch.device("cpu"))
    cropped = aug(_batch(), norm, torch.Generator().manual_seed(4))
    plain(_batch(), norm, torch.Generator().manual_seed(4))
    with_crop, without = seen
    assert with_crop.shape == (BatchAugment.DRAWS + 2, 8) and without.shape == (BatchAugment.DRAWS, 8)
    assert torch.equal(with_crop[:BatchAugment.DRAWS], without)
    assert cropped.shape == (8, 1, 12, 12)


def test_erasing_blanks_a_rectangle_to_the_mean():
    aug = BatchAugment(AugmentConfig(hflip=False, rotation=0, translate=0, scale=0, brightness=0, contrast=0,
                                     erasing=1))
    norm = Normalizer([0.5], [0.5], torch.device("cpu"))
    x = torch.full((4, 1, 16, 16), 255, dtype=torch.uint8)
    out = aug(x, norm, torch.Generator().manual_seed(0))
    zeros = (out == 0).sum((1, 2, 3))
    assert torch.all(zeros >= 1) and torch.all(zeros < 16 * 16)


def test_affine_grid_matches_torch():
    import torch.nn.functional as F

    from emoclf.data.augment import affine_grid

    gen = torch.Generator().manual_seed(0)
    for n, h, w in ((5, 16, 16), (3, 12, 20), (1, 7, 5)):
        theta = torch.randn(n, 2, 3, generator=gen)
        expected = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
        torch.testing.assert_close(affine_grid(theta, n, h, w), expected, rtol=0, atol=1e-5)


def test_erasing_per_image_slices_match_the_batch_mask():
    aug = BatchAugment(AugmentConfig(erasing=0.5))
    x = torch.randn(32, 3, 24, 20)
    u = torch.rand(BatchAugment.DRAWS, 32, generator=torch.Generator().manual_seed(3))
    slices, mask = aug.erase(x.clone(), u), aug.erase(x.clone(), u, vectorized=True)
    assert torch.equal(slices, mask)
    erased = (slices == 0).flatten(1).any(1)
    assert 0 < int(erased.sum()) < 32  # some images erased, some not: both branches of the draw


def test_tencrop_views_are_corner_and_centre_crops_and_their_flips():
    from emoclf.engine import tta_views

    x = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 20, 20).contiguous()  # value = column index
    views = tta_views(x, "tencrop")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    centre, left_top, right_top = views[0], views[2], views[4]
    assert float(centre.mean()) == pytest.approx(float(x.mean()), abs=0.2)
    assert left_top.mean() < centre.mean() < right_top.mean()  # corner crops see shifted columns
    assert torch.allclose(views[1], centre.flip(-1))
    assert [len(tta_views(x, m)) for m in ("none", "flip")] == [1, 2]
