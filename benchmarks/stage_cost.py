"""Cost of a training step in each compression state, relative to a plain FP32 step, measured in one run.

States: FP32; masked (pruned, mask re-applied after every step); QAT; QAT+masked; QAT+masked+KD (with its FP32
teacher's forward pass). Every state trains through pqd's own loop (``fit``) on the same random batches; states
alternate over rounds. Target (issue 3): QAT+masked+KD at most 1.6x a plain FP32 step, teacher included.

    python benchmarks/stage_cost.py [--models resnet18,vgg16_bn,wrn28_10] [--batch 128] [--steps 4]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from pqd.data.cifar import ArrayDataset
from pqd.measure.fingerprint import describe, fingerprint
from pqd.models import create_model
from pqd.quant import calibrate, prepare_qat
from pqd.stages.distill import DistillConfig, DistillTask
from pqd.stages.prune import PruneConfig, Pruner, apply_masks
from pqd.training.loop import Hooks, TrainConfig, fit


def build(name: str, masked: bool, qat: bool):
    torch.manual_seed(0)
    model = create_model(name, 10)
    if masked:
        Pruner(model, PruneConfig(sparsity=0.8)).finish()
    if qat:
        prepare_qat(model)
        calibrate(model, [torch.rand(16, 3, 32, 32)])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,vgg16_bn,wrn28_10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--amp", default="auto")
    args = ap.parse_args()
    print(f"machine: {describe(fingerprint())}; torch threads {torch.get_num_threads()}; batch {args.batch}; amp {args.amp}")
    n = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    ds = ArrayDataset(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (n,), generator=g), 10, (0.5,) * 3, (0.25,) * 3, "random", "train")
    cfg = TrainConfig(epochs=1, batch_size=args.batch, lr=0.01, amp=args.amp)
    cpu = torch.device("cpu")
    for name in args.models.split(","):
        teacher = create_model(name, 10).eval().to(memory_format=torch.channels_last)
        states = {}
        for label, masked, qat, kd in [("fp32", 0, 0, 0), ("masked", 1, 0, 0), ("qat", 0, 1, 0),
                                       ("qat+masked", 1, 1, 0), ("qat+masked+kd", 1, 1, 1)]:
            model = build(name, bool(masked), bool(qat))
            hooks = Hooks(step_end=[lambda s, t, m=model: apply_masks(m)] if masked else [])
            task = DistillTask(copy.deepcopy(teacher), DistillConfig()) if kd else None
            states[label] = (model, hooks, task)
            fit(model, ds, cfg, device=cpu, hooks=hooks, task=task, desc=f"warm {label}")
        times = {k: [] for k in states}
        for _ in range(args.rounds):
            for label, (model, hooks, task) in states.items():
                t0 = time.perf_counter()
                fit(model, ds, cfg, device=cpu, hooks=hooks, task=task, desc=label)
                times[label].append((time.perf_counter() - t0) / args.steps)
        base = min(times["fp32"])
        print(f"{name}: " + "; ".join(f"{k} {min(v) * 1e3:.0f} ms/step = {min(v) / base:.2f}x" for k, v in times.items())
              + "  (target: qat+masked+kd <= 1.6x)")


if __name__ == "__main__":
    main()
