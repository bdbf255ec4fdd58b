"""The study report: Markdown with PNG plots (matplotlib), read only from the study's results files.

Per (model, dataset): accuracy vs latency and accuracy vs size with the Pareto frontier marked, and the ordering
ablation with its spread over seeds. Then a table of every cell, and the paper's published row beside ours.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from pqd.measure.fingerprint import describe  # noqa: E402
from pqd.study.presets import ORDERINGS, StudyConfig  # noqa: E402

# The one row quoted from the paper by a public summary (dataset unstated).
PAPER_ROWS = [
    {"model": "resnet18", "method": "fp32", "accuracy": 78.37, "size_mb": 42.65, "latency_ms": 2.45},
    {"model": "resnet18", "method": "prune-quantize-distill", "accuracy": 79.62, "size_mb": 6.74, "latency_ms": 1.00},
]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point dominates (cost <= and accuracy >=, one strictly)."""
    front = []
    for i, (c, a) in enumerate(points):
        dominated = any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for j, (c2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def primary_latency(res: dict, runtime: str, threads: int) -> float | None:
    for r in res.get("latency", []):
        if r["runtime"] == runtime and r["threads"] == threads:
            return r["median_ms"]
    return None


def summarize(rows: list[dict], runtime: str, threads: int) -> dict[str, dict]:
    """Per method: mean/std accuracy over seeds, mean latency and sizes."""
    by = defaultdict(list)
    for r in rows:
        by[r["method"]].append(r)
    out = {}
    for method, rs in by.items():
        accs = [r["accuracy"] for r in rs]
        lats = [v for v in (primary_latency(r, runtime, threads) for r in rs) if v is not None]
        out[method] = {
            "accuracy": statistics.fmean(accs), "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accuracies": accs, "seeds": [r["seed"] for r in rs],
            "latency_ms": statistics.fmean(lats) if lats else float("nan"),
            "compact_mib": statistics.fmean(r["sizes"]["compact_mib"] for r in rs),
            "onnx_mib": statistics.fmean(r["sizes"]["onnx_mib"] for r in rs),
            "fp32_mib": statistics.fmean(r["sizes"]["fp32_checkpoint_mib"] for r in rs),
            "precision": rs[0]["precision"], "agreement": min(r["agreement"] for r in rs),
        }
    return out


def _frontier_plot(ax, summary: dict, key: str, xlabel: str) -> list[str]:
    methods = [m for m in summary if summary[m][key] == summary[m][key]]  # drop NaN
    pts = [(summary[m][key], summary[m]["accuracy"]) for m in methods]
    front = pareto_front(pts)
    for i, m in enumerate(methods):
        x, y = pts[i]
        ax.scatter([x], [y], s=60 if i in front else 30, marker="o" if summary[m]["precision"] == "int8" else "s",
                   edgecolors="black" if i in front else "none", zorder=3)
        ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    fx = [pts[i][0] for i in front]
    fy = [pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", linestyle="--", linewidth=1, label="Pareto frontier", zorder=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 accuracy on the artifact (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return [methods[i] for i in front]


def write_report(study: str | Path) -> Path:
    """Write STUDY/report.md and STUDY/plots/*.png from STUDY/results.json. Returns the report path."""
    from pqd.study.grid import write_tables

    study = Path(study)
    cfg = StudyConfig.model_validate(yaml.safe_load((study / "study.yaml").read_text()))
    results = write_tables(study)
    plots = study / "plots"
    plots.mkdir(exist_ok=True)
    runtime, threads = cfg.runtimes[0], max(cfg.threads)
    machine = results[0]["machine"] if results else None
    lines = ["# pqd study report", "",
             f"Cells measured: {len(results)} of {len(cfg.models) * len(cfg.datasets) * len(cfg.methods) * len(cfg.seeds)}. "
             f"Accuracy is top-1 of the exported artifact in ONNX Runtime on the test set"
             + (f" (first {cfg.test_subset} images)" if cfg.test_subset else "") + ". "
             f"Latency: batch 1, median, {runtime}, {threads} thread(s).", ""]
    if machine:
        lines += [f"Latency measured on: {describe(machine)}.", ""]
    lines += [f"Settings: models {cfg.models}, datasets {cfg.datasets}, seeds {cfg.seeds}, "
              f"training images {cfg.subset or 'all'}, teacher {cfg.teacher.epochs} epochs, stage epochs "
              f"{cfg.epochs}, sparsity {cfg.sparsity}, KD T={cfg.temperature} alpha={cfg.alpha}.", ""]
    frontiers = {}
    for model in cfg.models:
        for dataset in cfg.datasets:
            rows = [r for r in results if r["model"] == model and r["dataset"] == dataset]
            if not rows:
                continue
            summary = summarize(rows, runtime, threads)
            tag = f"{model}_{dataset}"
            fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
            f_lat = _frontier_plot(axes[0], summary, "latency_ms", f"latency (ms, batch 1, {runtime}, {threads} thr)")
            f_size = _frontier_plot(axes[1], summary, "compact_mib", "compact checkpoint size (MiB)")
            fig.suptitle(f"{model} / {dataset}: accuracy vs latency and size (circles INT8, squares FP32)")
            fig.tight_layout()
            fig.savefig(plots / f"{tag}_frontier.png", dpi=110)
            plt.close(fig)
            frontiers[tag] = {"latency": f_lat, "size": f_size}
            lines += [f"## {model} / {dataset}", "", f"![frontier](plots/{tag}_frontier.png)", "",
                      f"Pareto frontier (accuracy vs latency): {', '.join(f_lat)}.  ",
                      f"Pareto frontier (accuracy vs size): {', '.join(f_size)}.", "",
                      "| method | precision | accuracy % (mean ± sd) | seeds | latency ms | compact MiB | ONNX MiB | FP32 MiB | agreement % |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for m in [m for m in cfg.methods if m in summary]:
                s = summary[m]
                lines.append(f"| {m} | {s['precision']} | {s['accuracy']:.2f} ± {s['accuracy_std']:.2f} | {len(s['seeds'])} "
                             f"| {s['latency_ms']:.3f} | {s['compact_mib']:.2f} | {s['onnx_mib']:.2f} | {s['fp32_mib']:.2f} "
                             f"| {s['agreement']:.1f} |")
            lines.append("")
            orders = [o for o in ORDERINGS if o in summary]
            if len(orders) > 1:
                fig, ax = plt.subplots(figsize=(8, 3.8))
                means = [summary[o]["accuracy"] for o in orders]
                sds = [summary[o]["accuracy_std"] for o in orders]
                ax.bar(range(len(orders)), means, yerr=sds, capsize=4,
                       color=["tab:red" if o == "prune-quantize-distill" else "tab:blue" for o in orders])
                for k, o in enumerate(orders):
                    ax.scatter([k] * len(summary[o]["accuracies"]), summary[o]["accuracies"], color="black", s=10, zorder=3)
                ax.set_xticks(range(len(orders)), [o.replace("-", "\n") for o in orders], fontsize=7)
                lo = min(min(summary[o]["accuracies"]) for o in orders)
                hi = max(max(summary[o]["accuracies"]) for o in orders)
                ax.set_ylim(max(0, lo - 3), min(100, hi + 2))
                ax.set_ylabel("accuracy on the artifact (%)")
                ax.set_title(f"{model} / {dataset}: stage order at equal epochs ({cfg.epochs})")
                fig.tight_layout()
                fig.savefig(plots / f"{tag}_orderings.png", dpi=110)
                plt.close(fig)
                best = max(orders, key=lambda o: summary[o]["accuracy"])
                lines += ["### Stage order", "", f"![orderings](plots/{tag}_orderings.png)", "",
                          f"Best order here: **{best}**"
                          + (" (the paper's order)." if best == "prune-quantize-distill" else
                             f"; the paper's order is {summary.get('prune-quantize-distill', {}).get('accuracy', float('nan')):.2f}%."),
                          ""]
    lines += ["## The paper's published row beside ours", "",
              "The paper's figures come from a public summary that does not state the dataset or the machine; ours are "
              "measured here (see above). Sizes: the paper's MB vs our FP32 checkpoint and compact checkpoint MiB.", "",
              "| source | model | method | accuracy % | size | latency ms |", "|---|---|---|---|---|---|"]
    for p in PAPER_ROWS:
        lines.append(f"| paper | {p['model']} | {p['method']} | {p['accuracy']:.2f} | {p['size_mb']:.2f} MB | {p['latency_ms']:.2f} |")
        for r in results:
            if r["model"] == p["model"] and r["method"] == p["method"]:
                size = r["sizes"]["fp32_checkpoint_mib"] if p["method"] == "fp32" else r["sizes"]["compact_mib"]
                lat = primary_latency(r, runtime, threads)
                lines.append(f"| pqd ({r['dataset']}, seed {r['seed']}) | {r['model']} | {r['method']} | {r['accuracy']:.2f} "
                             f"| {size:.2f} MiB | {lat if lat is not None else float('nan'):.3f} |")
    lines += ["", "## Every cell", "", "| cell | precision | accuracy % | torch acc % | agreement % | sparsity | compact MiB | "
              + " | ".join(f"{rt}/{t} ms" for rt in cfg.runtimes for t in cfg.threads) + " |",
              "|---|---|---|---|---|---|---|" + "---|" * (len(cfg.runtimes) * len(cfg.threads))]
    for r in results:
        lats = " | ".join(f"{primary_latency(r, rt, t) or float('nan'):.3f}" for rt in cfg.runtimes for t in cfg.threads)
        lines.append(f"| {r['cell']} | {r['precision']} | {r['accuracy']:.2f} | {r['accuracy_torch']:.2f} | "
                     f"{r['agreement']:.1f} | {r['mask_sparsity']:.3f} | {r['sizes']['compact_mib']:.3f} | {lats} |")
    lines += ["", "Files: `results.csv`, `results.json` (every figure with its machine fingerprint), `plots/`.", ""]
    path = study / "report.md"
    path.write_text("\n".join(lines))
    (study / "frontiers.yaml").write_text(yaml.safe_dump(frontiers, sort_keys=False))
    return path
