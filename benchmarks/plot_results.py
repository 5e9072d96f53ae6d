"""Plot NDCG@10 against training time from the benchmark JSON files (for the README and docs/results.md).

``validation_ndcg_vs_time.png``: the ML-1m reproduction runs and the race against RecBole on ml-100k. Held-out
runs show the validation item; runs under the paper's protocol train on it and show the test item.
``ndcg_vs_budget_ml1m_cpu.png``: what a 15-, 30-, 60- or 120-minute planned schedule buys on one thread.
``two_hours_ml1m_cpu.png``: the two-hour runs on one thread, in float32 and in bfloat16 (with and without attention
dropout), against the published full-ranking numbers on the same file.

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
SEEN_REMOVED = "valid_full_filtered_NDCG@10"
# ML-1m runs on one thread whose schedules were planned for different budgets (15, 30, 60 and 120 minutes)
BUDGET_RUNS = ("plateau_15min_planned/seed*_threads1.json", "plateau_30min_planned/seed*_threads1.json",
               "plateau_60min_planned/seed*_threads1.json", "long_120min/seed*_threads1.json")

# ML-1m runs of two hours on one thread: one label per folder
TWO_HOUR_RUNS = {"long_120min": "float32 (the paper's arithmetic)",
                 "bf16_120min": "bfloat16 (--amp-cpu)",
                 "bf16_attn_dropout0_120min": "bfloat16, no attention dropout (--amp-cpu --attn-dropout 0)"}


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
                  Line2D([], [], color="0.3", ls=":", label="dotted: full ranking, seen items kept")]
        handles = axes[0].get_legend_handles_labels()[0] + styles
        axes[0].legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                       frameon=False)
    vs = RESULTS / "vs_recbole_ml100k.json"
    if vs.exists():
        run = json.loads(vs.read_text())
        for key, label in (("minibert4rec", "minibert4rec"), ("recbole", "RecBole 1.2.1 (anomaly detection off)"),
                           ("recbole_stock", "RecBole 1.2.1 (stock)")):
            if run.get(key):
                # both sides with the user's seen items removed (RecBole's full sort; our full_filtered)
                curve = [r for r in run[key]["curve"] if r.get(SEEN_REMOVED) is not None]
                axes[1].plot([r["elapsed_seconds"] / 60 for r in curve], [r[SEEN_REMOVED] for r in curve],
                             marker=".", label=label)
        axes[1].set(title="ml-100k, same config and threads", xlabel="training time (minutes)",
                    ylabel="validation NDCG@10 (full ranking, seen removed)")
        axes[1].legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(RESULTS / "validation_ndcg_vs_time.png", dpi=110, bbox_inches="tight")
    print(f"wrote {RESULTS / 'validation_ndcg_vs_time.png'}")
    plot_budgets()
    plot_two_hours()


def plot_curve_and_final(ax, run: dict, colour: str, label: str | None) -> None:
    """One run: its test NDCG@10 curve (full ranking, seen removed, 1,000 users) against training minutes, and a
    cross at its final test on all users, drawn above every curve so that no later run hides it."""
    rows = [r for r in run["curve"] if "test_full_filtered_NDCG@10" in r]
    ax.plot([r["elapsed_seconds"] / 60 for r in rows], [r["test_full_filtered_NDCG@10"] for r in rows],
            color=colour, lw=1, label=label)
    ax.plot(run["train_seconds"] / 60, run["test"]["full_filtered"]["NDCG@10"], "x", color=colour, ms=8, mew=2,
            zorder=5)


def plot_budgets() -> None:
    """Full-ranking test NDCG@10 (seen removed) against training time, one colour per planned budget.

    A schedule planned for a budget decays its learning rate to zero when the budget ends: the curve of a short
    budget rises at its end, while a longer budget's curve at the same minute is still at a high learning rate.
    The cross marks the final test on all users; the curve is a fixed sample of 1,000 users.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {}
    for pattern in BUDGET_RUNS:
        for path in sorted(RESULTS.glob(pattern)):
            run = json.loads(path.read_text())
            if run.get("status") != "done":
                continue
            words = run["command"].split()
            budget = float(words[words.index("--time-budget-minutes") + 1])  # reproduce.py's command line
            label = None if budget in colours else f"schedule planned for {budget:g} minutes"
            colour = colours.setdefault(budget, f"C{len(colours)}")
            plot_curve_and_final(ax, run, colour, label)
    if not colours:
        return
    ax.axhline(0.1618, color="k", ls="--", lw=0.8, label="RecTools' BERT4Rec (0.1618)")
    ax.plot([], [], "x", color="gray", ms=8, mew=2, label="final test, all users (curves: 1,000 users)")
    ax.set(title="ML-1m, the paper's model, 1 thread: what a training budget buys",
           xlabel="training time (minutes)", ylabel="test NDCG@10 (full ranking, seen removed)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "ndcg_vs_budget_ml1m_cpu.png", dpi=110)
    print(f"wrote {RESULTS / 'ndcg_vs_budget_ml1m_cpu.png'}")


def plot_two_hours() -> None:
    """Full-ranking test NDCG@10 (seen removed) of the two-hour runs against training time, with the published
    BERT4Rec, gSASRec and SASRec+ numbers on the same file (``full_ranking_anchors`` in each result file) as
    horizontal lines. The cross marks the final test on all users; the curve is a fixed sample of 1,000 users."""
    done = {}
    for folder, label in TWO_HOUR_RUNS.items():
        for path in sorted((RESULTS / folder).glob("seed*_threads1.json")):
            run = json.loads(path.read_text())
            if run.get("status") == "done":
                done.setdefault(label, []).append(run)
    if not done:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for i, (label, runs) in enumerate(done.items()):
        for run in runs:
            plot_curve_and_final(ax, run, f"C{i}", f"{label}, seed {run['config']['seed']}")
    anchors = next(iter(done.values()))[0].get("full_ranking_anchors", {})
    for k, (name, value) in enumerate((n, v) for n, v in anchors.items() if n != "protocol"):
        ax.axhline(value, color=("0.6", "0.45", "k", "tab:olive", "tab:brown")[k % 5], ls=("--", ":", "-.")[k % 3],
                   lw=0.9, label=f"{name}: {value}")
    ax.plot([], [], "x", color="gray", ms=8, mew=2, label="final test, all users (curves: 1,000 users)")
    ax.set(title="ML-1m, 1 thread, schedules planned for 120 minutes", ylim=(0.08, None),
           xlabel="training time (minutes)", ylabel="test NDCG@10 (full ranking, seen removed)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(RESULTS / "two_hours_ml1m_cpu.png", dpi=110, bbox_inches="tight")
    print(f"wrote {RESULTS / 'two_hours_ml1m_cpu.png'}")


if __name__ == "__main__":
    main()
