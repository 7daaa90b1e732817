"""emoclf compare --seeds: every config with seeds s, s+1, ...; the table's means are the runs' own metrics; McNemar's
exact test on the per-image correctness of the two best configs."""
from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
from conftest import REPO, tiny_overrides

from emoclf.cli.app import main
from emoclf.comparison.seeds import mcnemar_exact
from emoclf.config import load_config
from emoclf.training import trainer as trainer_module


@pytest.mark.parametrize("b, c", [(0, 0), (1, 9), (5, 5), (3, 12), (0, 7), (40, 25)])
def test_mcnemar_exact_is_a_two_sided_binomial_test(b, c):
    scipy_stats = pytest.importorskip("scipy.stats")
    want = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(want, rel=1e-12)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


def right(run):
    with open(run / "predictions.csv", newline="") as fh:
        return {r["path"]: r["true"] == r["predicted"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def seeded(small_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    wide = out / "wide.yaml"
    wide.write_text("model: {name: cnn, width: 12}\noutput: {name: wide}\nseed: 7\n")
    sets = [a for o in tiny_overrides(small_faces, out / "runs", epochs=2) for a in ("--set", o)]
    argv = ["compare", "--config", str(REPO / "configs/cnn.yaml"), str(wide), *sets, "--seeds", "2",
            "--out", str(out / "comparison")]
    assert main(argv) == 0
    return out, argv


def test_each_config_is_trained_with_consecutive_seeds_and_summarised(seeded):
    out, _ = seeded
    summary = json.loads((out / "comparison" / "comparison.json").read_text())
    configs = {c["name"]: c for c in summary["seeds"]["configs"]}
    assert configs["cnn"]["seeds"] == [42, 43] and configs["wide"]["seeds"] == [7, 8]
    assert configs["wide"]["runs"] == ["wide-seed7", "wide-seed8"]
    for c in configs.values():
        runs = [out / "runs" / r for r in c["runs"]]
        assert [load_config(str(r / "config.yaml")).seed for r in runs] == c["seeds"]
        metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
        for key in ("accuracy", "f1_macro", "loss", "top2_accuracy"):
            values = [m[key] for m in metrics]
            assert c["mean"][key] == pytest.approx(statistics.mean(values))
            assert c["std"][key] == pytest.approx(statistics.stdev(values))
    ordered = [c["name"] for c in summary["seeds"]["configs"]]
    means = [configs[n]["mean"]["f1_macro"] for n in ordered]
    assert means == sorted(means, reverse=True)


def test_the_paired_test_reads_each_images_correctness(seeded):
    out, _ = seeded
    summary = json.loads((out / "comparison" / "comparison.json").read_text())
    test, configs = summary["seeds"]["test"], {c["name"]: c for c in summary["seeds"]["configs"]}
    b_total = c_total = 0
    for pair, run_a, run_b in zip(test["pairs"], configs[test["a"]]["runs"], configs[test["b"]]["runs"]):
        a, b = right(out / "runs" / run_a), right(out / "runs" / run_b)
        assert set(a) == set(b) and pair["images"] == len(a) == 12
        only_a, only_b = sum(a[p] and not b[p] for p in a), sum(b[p] and not a[p] for p in a)
        assert (pair["a_only"], pair["b_only"]) == (only_a, only_b)
        b_total, c_total = b_total + pair["a_only"], c_total + pair["b_only"]
    assert (test["a_only"], test["b_only"]) == (b_total, c_total)
    n = b_total + c_total
    want = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b_total, c_total) + 1)) / 2 ** n)
    assert test["p_value"] == pytest.approx(want)
    text = (out / "comparison" / "comparison.md").read_text()
    assert "## Over 2 seeds" in text and f"McNemar's exact test: **p = {want:.3g}**" in text
    assert ("is larger than seed noise" in text) == (want < 0.05)
    assert ("is not larger than seed noise" in text) == (want >= 0.05)


def test_a_second_comparison_reuses_the_finished_runs(seeded, monkeypatch, capsys):
    out, argv = seeded

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trainer_module, "train", refuse)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "over 2 seeds" in printed and "McNemar's exact test, " in printed


def test_seeds_need_two_configs_two_seeds_and_no_finished_runs(small_faces, tmp_path, capsys):
    cnn = str(REPO / "configs/cnn.yaml")
    assert main(["compare", "--config", cnn, cnn.replace("cnn", "resnet18"), "--seeds", "1"]) == 2
    assert "--seeds must be 2 or more" in capsys.readouterr().err
    assert main(["compare", "--config", cnn, "--seeds", "3"]) == 2
    assert "two or more --config files; got 1" in capsys.readouterr().err
    assert main(["compare", str(tmp_path), "--config", cnn, "--seeds", "3"]) == 2
    assert "takes no finished RUN folders" in capsys.readouterr().err
