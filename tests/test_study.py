"""The smoke preset end to end, and the report's content."""

import csv
import json

import pytest
import yaml

from pqd.cli import main
from pqd.errors import PQDError
from pqd.study import load_study_config, pareto_front, run_study
from pqd.study.presets import ALL_METHODS


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, cifar10_dir):
    out = tmp_path_factory.mktemp("study") / "smoke"
    cfg = load_study_config("smoke", overrides=[f"data_dir={cifar10_dir}"])
    run_study(cfg, out)
    return out


def test_smoke_study_runs_every_method_and_writes_tables(smoke_study):
    rows = list(csv.DictReader(open(smoke_study / "results.csv")))
    assert sorted(r["method"] for r in rows) == sorted(ALL_METHODS)
    by = {r["method"]: r for r in rows}
    assert by["fp32"]["precision"] == "fp32" and by["prune-quantize-distill"]["precision"] == "int8"
    assert float(by["prune-quantize-distill"]["mask_sparsity"]) == pytest.approx(0.5, abs=1e-6)
    assert float(by["prune-quantize-distill"]["compact_bytes"]) < float(by["fp32"]["compact_bytes"]) / 4
    assert all(float(r["ort_t1_median_ms"]) > 0 for r in rows)
    results = json.loads((smoke_study / "results.json").read_text())
    assert len(results) == len(ALL_METHODS) and all("machine" in r for r in results)


def test_report_has_every_method_plots_and_a_true_frontier(smoke_study):
    report = (smoke_study / "report.md").read_text()
    for m in ALL_METHODS:
        assert f"| {m} |" in report
    assert "Latency measured on:" in report and "78.37" in report and "79.62" in report
    for png in ("resnet18_cifar10_frontier.png", "resnet18_cifar10_orderings.png"):
        data = (smoke_study / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    results = json.loads((smoke_study / "results.json").read_text())
    front = yaml.safe_load((smoke_study / "frontiers.yaml").read_text())["resnet18_cifar10"]["latency"]
    lat = {r["method"]: next(l["median_ms"] for l in r["latency"] if l["runtime"] == "ort") for r in results}
    acc = {r["method"]: r["accuracy"] for r in results}
    for m in front:  # no measured cell is at least as fast and as accurate, and strictly better in one
        assert not any(lat[o] <= lat[m] and acc[o] >= acc[m] and (lat[o] < lat[m] or acc[o] > acc[m])
                       for o in acc if o != m)
    off = [m for m in acc if m not in front]
    for m in off:  # and every other cell is dominated by some cell
        assert any(lat[o] <= lat[m] and acc[o] >= acc[m] and (lat[o] < lat[m] or acc[o] > acc[m]) for o in acc)


def test_finished_cells_are_skipped(smoke_study, capsys):
    before = (smoke_study / "cells").stat().st_mtime_ns
    stamps = {p: p.stat().st_mtime_ns for p in smoke_study.glob("cells/*/model.pt")}
    data_dir = yaml.safe_load((smoke_study / "study.yaml").read_text())["data_dir"]
    assert main(["study", "--preset", "smoke", "--out", str(smoke_study), "--data-dir", data_dir]) == 0
    assert {p: p.stat().st_mtime_ns for p in smoke_study.glob("cells/*/model.pt")} == stamps
    assert "11 cells measured" in capsys.readouterr().out and (smoke_study / "cells").stat().st_mtime_ns == before


def test_pareto_front():
    pts = [(1.0, 70.0), (2.0, 80.0), (1.5, 60.0), (3.0, 80.0), (0.5, 50.0)]
    assert pareto_front(pts) == [4, 0, 1]


def test_presets_and_overrides():
    cfg = load_study_config("paper")
    assert cfg.models == ["resnet18", "wrn28_10", "vgg16_bn"] and cfg.datasets == ["cifar10", "cifar100"]
    assert cfg.epochs == {"prune": 20, "quantize": 40, "distill": 40} and len(cfg.methods) == 11
    cfg = load_study_config("small", overrides=["teacher.epochs=2", "methods=[fp32, prune-quantize-distill]"])
    assert cfg.teacher.epochs == 2 and cfg.teacher.lr == 0.1 and cfg.methods == ["fp32", "prune-quantize-distill"]
    with pytest.raises(PQDError, match="unknown method 'prune-prune'"):
        load_study_config("smoke", overrides=["methods=[prune-prune]"])
    with pytest.raises(PQDError, match="unknown preset 'huge'"):
        load_study_config("huge")
    with pytest.raises(PQDError, match="teacher.epocs: unknown field"):
        load_study_config("smoke", overrides=["teacher.epocs=3"])
    with pytest.raises(PQDError, match="expected FIELD=VALUE"):
        load_study_config("smoke", overrides=["teacher.epochs"])


def test_shards_split_the_cells(tmp_path, cifar10_dir):
    from pqd.study.grid import cells, parse_shard

    cfg = load_study_config("smoke", overrides=[f"data_dir={cifar10_dir}"])
    n = len(cells(cfg))
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(PQDError, match="I must be in"):
        parse_shard("3/3")
    picked = [c for i in range(3) for k, c in enumerate(cells(cfg)) if k % 3 == i]
    assert sorted(c.name for c in picked) == sorted(c.name for c in cells(cfg)) and len(picked) == n
