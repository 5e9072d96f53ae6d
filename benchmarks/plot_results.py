"""Plot NDCG@10 against training time from the benchmark JSON files (for the README).

Held-out runs show the validation item; runs under the paper's protocol train on it and show the test item.

    python benchmarks/plot_results.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    runs = sorted(RESULTS.glob("reproduce_ml1m_*.json"))  # every ML-1m reproduction run kept in results/
    for path in runs:
        run = json.loads(path.read_text())
        # held-out runs watch the validation item; paper-protocol runs train on it and watch the test item instead
        split = "test" if run.get("config", {}).get("include_valid_in_train") else "valid"
        rows = [r for r in run["curve"] if f"{split}_sampled_NDCG@10" in r]
        offset = run.get("init_from", {}).get("train_seconds", 0.0)  # a second phase continues the first one's clock
        minutes = [(offset + r["elapsed_seconds"]) / 60 for r in rows]
        device = run["machine"].get("gpu") or f"CPU, {run['machine']['torch_threads']} thread(s)"
        label = (f"batch {run['config']['batch_size']}, {device}" + (", 2nd phase" if offset else "")
                 + (", paper's protocol (test)" if split == "test" else ", held-out (valid)"))
        line, = axes[0].plot(minutes, [r[f"{split}_sampled_NDCG@10"] for r in rows], marker=".", ms=3, label=label)
        axes[0].plot(minutes, [r[f"{split}_full_NDCG@10"] for r in rows], ls=":", color=line.get_color())
    if runs:
        paper = json.loads(runs[0].read_text())["paper"]
        axes[0].axhline(paper["NDCG@10"], color="k", ls="--", lw=0.8, label="paper's test NDCG@10 (sampled)")
        axes[0].set(title=f"ML-1m, L=200 ({json.loads(runs[0].read_text())['machine']['cpu']})",
                    xlabel="training time (minutes)", ylabel="NDCG@10 during training")
        # one entry per run (its colour) and one per line style; below the plot, so that no curve is covered
        styles = [Line2D([], [], color="0.3", marker=".", ms=3, label="solid: 100 sampled negatives"),
                  Line2D([], [], color="0.3", ls=":", label="dotted: full ranking")]
        handles = axes[0].get_legend_handles_labels()[0] + styles
        axes[0].legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                       frameon=False)
    vs = RESULTS / "vs_recbole_ml100k.json"
    if vs.exists():
        run = json.loads(vs.read_text())
        for key, label in (("minibert4rec", "minibert4rec"), ("recbole", "RecBole 1.2.1 (anomaly detection off)"),
                           ("recbole_stock", "RecBole 1.2.1 (stock)")):
            if run.get(key):
                curve = [r for r in run[key]["curve"] if r.get("valid_full_NDCG@10") is not None]
                axes[1].plot([r["elapsed_seconds"] / 60 for r in curve], [r["valid_full_NDCG@10"] for r in curve],
                             marker=".", label=label)
        axes[1].set(title="ml-100k, same config and threads", xlabel="training time (minutes)",
                    ylabel="validation NDCG@10 (full ranking)")
        axes[1].legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(RESULTS / "validation_ndcg_vs_time.png", dpi=110, bbox_inches="tight")
    print(f"wrote {RESULTS / 'validation_ndcg_vs_time.png'}")


if __name__ == "__main__":
    main()
