"""Every stage alone, the paper order and all six permutations on a tiny model, with exact-zero checks."""

import json
from itertools import permutations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pqd.training.loop as loop
from pqd import compress, load_model, ordering_recipe
from pqd.errors import PQDError
from pqd.quant import ActFakeQuant, QConvBN, QLinear, weight_scale
from pqd.quant.modules import fake_quant_weight
from pqd.stages import kd_loss, sparsity_report
from pqd.stages.prune import PruneConfig, Pruner, cubic_sparsity

TRAIN = {"batch_size": 64, "amp": "off", "lr": 0.02}
EPOCHS = {"prune": 1, "quantize": 1, "distill": 1}
SUBSET = {"subset": 256, "test_subset": 128}


def _recipe(order, **kw):
    return ordering_recipe(order, EPOCHS, train=TRAIN, prune={"sparsity": 0.6}, **kw)


def assert_masks_hold(model):
    """Masked weights are exactly zero, also after BN folding and int8 weight quantization."""
    n_masked = 0
    for m in model.modules():
        conv = m.conv if isinstance(m, QConvBN) else m.linear if isinstance(m, QLinear) else m
        mask = getattr(conv, "weight_mask", None)
        if mask is None:
            continue
        n_masked += 1
        assert torch.all(conv.weight[~mask] == 0)
        if isinstance(m, QConvBN):
            folded = fake_quant_weight(m.folded()[0])
            assert torch.all(folded[~mask] == 0)
    assert n_masked > 0


def check_run(run, order):
    model, meta = load_model(run)
    assert [t["stage"] for t in meta["transforms"]] == list(order)
    summary = json.loads((run / "stages.json").read_text())
    assert [s["stage"] for s in summary] == list(order)
    if "prune" in order:
        sp = sparsity_report(model)
        assert sp["pruned_weights"] == round(0.6 * sp["masked_weights"])  # exact target count of zeros
        assert_masks_hold(model)
    if "quantize" in order:
        assert any(isinstance(m, ActFakeQuant) for m in model.modules())
        assert all(not bool(m.observing) for m in model.modules() if isinstance(m, ActFakeQuant))
    if "distill" in order:
        assert "loss_kd" in summary[list(order).index("distill")]
    return model


@pytest.mark.parametrize("order", [("prune",), ("quantize",), ("distill",),
                                   *permutations(("prune", "quantize", "distill"), 2),
                                   *permutations(("prune", "quantize", "distill"))])
def test_every_order_runs_and_keeps_masks(tmp_path, teacher_run, order):
    res = compress(_recipe(order), teacher=teacher_run, out=tmp_path / "run", device="cpu", **SUBSET)
    assert res.order == "->".join(order)
    check_run(tmp_path / "run", order)


def test_paper_pipeline_learns(tmp_path, teacher_run):
    res = compress(ordering_recipe(("prune", "quantize", "distill"), {"prune": 2, "quantize": 2, "distill": 2},
                                   train=TRAIN, prune={"sparsity": 0.5}),
                   teacher=teacher_run, out=tmp_path / "run", device="cpu")
    teacher_acc = json.loads((teacher_run / "metrics.json").read_text())["test_accuracy"]
    assert res.test_accuracy > 35.0 and res.test_accuracy > teacher_acc - 15
    assert res.quantized and res.mask_sparsity == pytest.approx(0.5, abs=1e-4)


def test_compress_resumes_where_it_stopped(tmp_path, teacher_run, monkeypatch):
    rec = ordering_recipe(("prune", "quantize", "distill"), {"prune": 1, "quantize": 2, "distill": 1},
                          train=TRAIN, prune={"sparsity": 0.5})
    compress(rec, teacher=teacher_run, out=tmp_path / "full", device="cpu", **SUBSET)
    real, n = loop.atomic_save, []

    def dying_save(obj, path):
        real(obj, path)
        n.append(1)
        if obj.get("stage_index") == 1 and obj.get("epoch") == 1:
            raise KeyboardInterrupt  # dies inside the quantize stage

    monkeypatch.setattr(loop, "atomic_save", dying_save)
    import pqd.stages.pipeline as pipeline
    monkeypatch.setattr(pipeline, "atomic_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        compress(rec, teacher=teacher_run, out=tmp_path / "part", device="cpu", **SUBSET)
    monkeypatch.undo()
    compress(out=tmp_path / "part", resume=True)
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "part")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_distill_without_teacher_and_mismatched_classes(tmp_path, teacher_run, cifar100_dir):
    with pytest.raises(PQDError, match=r"stages\[0\].distill: no teacher"):
        compress(_recipe(("distill",)), student=teacher_run, out=tmp_path / "a", device="cpu")
    with pytest.raises(PQDError, match="trained for 10 classes but cifar100 has 100"):
        compress(_recipe(("prune",)), teacher=teacher_run, dataset="cifar100", data_dir=cifar100_dir,
                 out=tmp_path / "b", device="cpu")


def test_qat_really_quantizes(teacher_run):
    from pqd.quant import calibrate, prepare_qat

    model, _ = load_model(teacher_run)
    prepare_qat(model)
    calibrate(model, [torch.rand(32, 3, 32, 32)])
    model.eval()
    seen = {}
    for name, m in model.named_modules():
        if isinstance(m, ActFakeQuant):
            m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, (mod, o)))
    x = torch.rand(8, 3, 32, 32)
    model(x)
    assert len(seen) > 10
    for mod, out in seen.values():  # activations: uint8 grid points, clamped to the observed range
        scale, zp = (t.item() for t in mod.qparams())
        q = out / scale + zp
        assert torch.allclose(q, q.round(), atol=1e-3)
        assert q.min() >= -1e-3 and q.max() <= 255 + 1e-3
    for m in model.modules():  # weights: per-channel int8 grid, at most 255 levels
        if isinstance(m, QConvBN):
            w = fake_quant_weight(m.folded()[0])
            s = weight_scale(m.folded()[0]).view(-1, 1, 1, 1)
            q = w / s
            assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() <= 127 + 1e-3


def test_bn_folding_matches_the_float_convbn():
    from pqd.models.layers import ConvBN

    torch.manual_seed(0)
    cb = ConvBN(8, 16)
    cb.train()
    for _ in range(5):
        cb(torch.randn(16, 8, 8, 8))
    cb.eval()
    q = QConvBN(cb.conv, cb.bn).eval()
    x = torch.randn(4, 8, 8, 8)
    ref = cb(x)
    w, b, _ = q.folded()
    assert torch.allclose(F.conv2d(x, w, b, padding=1), ref, atol=1e-4)  # exact algebra of the fold
    err = (q(x) - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.02  # int8 weights: a small, non-zero difference


def test_kd_loss_matches_hand_computation():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = torch.tensor([[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]])
    T = 3.0
    ps = np.exp(s.numpy() / T) / np.exp(s.numpy() / T).sum(1, keepdims=True)
    pt = np.exp(t.numpy() / T) / np.exp(t.numpy() / T).sum(1, keepdims=True)
    expected = (pt * (np.log(pt) - np.log(ps))).sum(1).mean() * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)


def test_cubic_schedule_and_layerwise_scope():
    cfg = PruneConfig(sparsity=0.8, ramp=0.5, updates=10)
    s = [cubic_sparsity(k, 100, cfg) for k in range(101)]
    assert s[0] == 0 and s[50] == pytest.approx(0.8) and s[100] == pytest.approx(0.8)
    assert all(a <= b for a, b in zip(s, s[1:]))
    assert s[10] > 0.8 * (1 - (1 - 10 / 50)) ** 1  # cubic: fast at first
    from pqd.models import create_model

    model = create_model("vgg16_bn", width=0.125)
    p = Pruner(model, PruneConfig(sparsity=0.5, scope="layer"))
    p.finish()
    for name, frac in sparsity_report(model)["layers"].items():
        assert abs(frac - 0.5) < 0.01, name
    assert not hasattr(model.fc, "weight_mask") and not hasattr(model.features[0].conv.conv, "weight_mask") is False


def test_activation_fake_quant_matches_torch_op_values_and_gradients():
    from pqd.quant.modules import _FakeQuantAct

    x = torch.randn(4, 8, 5, 5) * 3
    s, z = torch.tensor([0.02]), torch.tensor([128], dtype=torch.int32)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    ya = torch.fake_quantize_per_tensor_affine(a, s, z, 0, 255)
    yb = _FakeQuantAct.apply(b, s, z.float(), 0, 255)
    assert torch.equal(ya, yb)
    g = torch.randn_like(x)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(a.grad, b.grad) and (a.grad == 0).any()  # zero gradient outside the range


def test_global_schedule_spans_all_stages(tmp_path, teacher_run):
    rec = ordering_recipe(("prune", "distill"), {"prune": 2, "distill": 2}, train=TRAIN, prune={"sparsity": 0.3})
    rec = rec.model_copy(update={"schedule": "global"})
    compress(rec, teacher=teacher_run, out=tmp_path / "g", device="cpu", **SUBSET)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == 4 and all(a > b for a, b in zip(lrs, lrs[1:]))  # one cosine, no restart at the distill stage
    saved = (tmp_path / "g" / "recipe.yaml").read_text()
    assert "schedule: global" in saved


def test_later_stage_on_a_quantized_model_reopens_bn_and_ranges(tmp_path, teacher_run):
    """Regression: a prune stage after quantize must train with live BN statistics and ranges (re-frozen late in
    the stage); with them frozen from its first step it collapsed to chance on real CIFAR-10."""
    quant = ordering_recipe(("quantize",), {"quantize": 1}, train=TRAIN)
    both = ordering_recipe(("quantize", "prune"), {"quantize": 1, "prune": 1}, train=TRAIN, prune={"sparsity": 0.5})
    compress(quant, teacher=teacher_run, out=tmp_path / "q", device="cpu", **SUBSET)
    compress(both, teacher=teacher_run, out=tmp_path / "qp", device="cpu", **SUBSET)
    after_q, _ = load_model(tmp_path / "q")
    after_qp, _ = load_model(tmp_path / "qp")
    sa, sb = after_q.state_dict(), after_qp.state_dict()
    bn = [k for k in sa if k.endswith("bn.running_mean")]
    ranges = [k for k in sa if k.endswith("max_val")]
    assert bn and ranges
    assert all(not torch.equal(sa[k], sb[k]) for k in bn)  # BN statistics moved during the prune stage
    assert sum(not torch.equal(sa[k], sb[k]) for k in ranges) > len(ranges) // 2  # and so did the ranges
    assert all(bool(m.bn_frozen) for m in after_qp.modules() if isinstance(m, QConvBN))  # frozen again at the end
