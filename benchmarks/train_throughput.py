"""Training throughput (images/s) of pqd's loop next to a plain PyTorch loop, same model and batch, one run.

The plain loop is the least a training loop does: pre-made batches, forward under the same autocast, backward,
SGD step. pqd's loop adds device-side augmentation, the LR schedule, metrics and the progress bar. Target
(issue 2): pqd within 1.1x of the plain loop. Rounds alternate between the two so machine drift hits both.

    python benchmarks/train_throughput.py [--models resnet18,vgg16_bn,wrn28_10] [--batch 128] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pqd.data.cifar import ArrayDataset
from pqd.measure.fingerprint import describe, fingerprint
from pqd.models import create_model
from pqd.training.loop import TrainConfig, amp_dtype, fit


def plain_loop(model, batches, dtype):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    for x, y in batches:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,vgg16_bn,wrn28_10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--amp", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"machine: {describe(fingerprint())}; torch threads {torch.get_num_threads()}; batch {args.batch}; "
          f"amp {args.amp}")
    n = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    ds = ArrayDataset(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (n,), generator=g), 10, (0.5,) * 3, (0.25,) * 3, "random", "train")
    cfg = TrainConfig(epochs=1, batch_size=args.batch, lr=0.01, amp=args.amp, channels_last=True)
    dtype = amp_dtype(args.amp, torch.device("cpu"))
    for name in args.models.split(","):
        model = create_model(name, 10).to(memory_format=torch.channels_last)
        plain_batches = [(ds.images[i:i + args.batch].float().div(255).contiguous(memory_format=torch.channels_last),
                          ds.labels[i:i + args.batch]) for i in range(0, n, args.batch)]
        fit(model, ds, cfg, device=torch.device("cpu"), desc="warm-up")  # warm-up both paths
        plain_loop(model, plain_batches[:1], dtype)
        t_pqd, t_plain = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fit(model, ds, cfg, device=torch.device("cpu"), desc="pqd")
            t_pqd.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plain_loop(model, plain_batches, dtype)
            t_plain.append(time.perf_counter() - t0)
        ips_pqd, ips_plain = n / min(t_pqd), n / min(t_plain)
        print(f"{name}: pqd loop {ips_pqd:.1f} img/s, plain loop {ips_plain:.1f} img/s, "
              f"pqd time / plain time {ips_plain / ips_pqd:.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
