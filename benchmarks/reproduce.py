"""Reproduce a row of the BERT4Rec paper's Table 2: train on one of its four datasets, print ours beside the paper's.

    python benchmarks/reproduce.py                       # ML-1m, the recipe (README, "Leaving the popularity plateau")
    python benchmarks/reproduce.py --dataset beauty      # reads data/beauty/beauty.txt (or give --path FILE)
    python benchmarks/reproduce.py --dataset beauty --path ../shared/data/beauty/beauty.txt --budget-minutes 60
    python benchmarks/reproduce.py --dataset my_items.txt --preset beauty   # your file, Beauty's settings

Datasets: ml-1m, ml-20m, beauty, steam (``minibert4rec.support.datasets.PRESETS``) or a file given by path. Where the
file is: ``--path FILE``; else ``DATA_DIR/<name>/`` (ml-1m: ratings.dat or sequences_by_time.txt, ml-20m:
ratings.csv, beauty: beauty.txt, steam: steam.txt -- the BERT4Rec authors' files); else, for local benchmarking,
``../shared/data/<name>/``; else ML-1m/20m are downloaded from GroupLens. Beauty and Steam have no official download:
a missing file stops the run with a message that says where to put it.

The preset of the dataset sets the data (the k-core: the paper's 5-core for raw MovieLens, none for the authors'
already-preprocessed beauty.txt / steam.txt), L, the mask ratio and the window step from the paper and the
authors' scripts, and the training options of our CPU recipe (batch, learning rate, warm-up, dropout, mask-last
share, epochs). Every option given on the command line overrides the preset, and the run prints what it applied
and what was overridden. For ML-1m the result is exactly the recipe this script has always run. The Cloze rules are the
package's defaults, which are the authors' (``masking="fixed"`` with its cap ``max_predictions``, left-counted
positions); ``--masking independent`` / ``--position-counting right`` give our earlier rules (docs/differences.md
has the measured effect). ``--loss-negatives K`` trains with a sampled softmax against K uniformly drawn
negatives instead of the full softmax over all items (not the paper's; off by default; README, "Catalogues of 54k
items and 20M actions", has its measured speed and quality).

``--protocol paper`` (default) trains as the authors' code does (gen_data_fin.py "puts validate into train"): on
every item but the test one, a fixed number of epochs, and tests the final weights; the test split is evaluated
during training for the curve only. ``--protocol held-out`` keeps the validation item out of training and tests
the epoch that was best on it.

The table is the same for every dataset: the paper's Table 2 row (sampled: the test item among 100 negatives
drawn by popularity), ours under that protocol, and ours under full ranking with seen items removed (the field's)
and kept. The JSON is rewritten after every epoch (the learning curve so far), atomically, so a long run can be
watched. The paper's numbers are stored under "paper", never as ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from common import ROOT, git_commit, machine, peak_memory_mb

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.support.runtime import set_threads
from minibert4rec.data import load_dataset
from minibert4rec.support.datasets import (KNOWN_DATASETS, METRICS, PRESETS, DatasetUnavailable, Preset, apply_preset,
                                   preset_for)
from minibert4rec.support.files import atomic_write
from minibert4rec.train import train

# Published ML-1m full-ranking NDCG@10 of BERT4Rec-like models, all with the user's seen items removed (the
# field's protocol; compare them only with our "full_filtered" numbers). Stored for the side-by-side, never as ours.
FULL_RANKING_ANCHORS = {"ml-1m": {
    "Petrov & Macdonald 2022 (HF BERT4Rec)": 0.1516,
    "Klenitskiy & Vasilev 2023 (BERT4Rec)": 0.1537,
    "RecTools BERT4Rec (256-d)": 0.1618,
    "gSASRec (Petrov & Macdonald 2023)": 0.1726,
    "SASRec+ full cross-entropy (Klenitskiy & Vasilev 2023)": 0.1821,
}}

FULL_RANKING_TARGET = {"ml-1m": 0.162}  # full NDCG@10, seen removed: RecTools' BERT4Rec level (0.1618)

PLATEAU_EXIT_NDCG = 0.20  # sampled NDCG@10 that counts as "off the popularity plateau" (ML-1m popularity: ~0.07)

PAPER_ML1M = PRESETS["ml-1m"].paper_row  # kept for older imports

# what the preset sets here: the data, the Cloze task's sizes, the model's sizes and the CPU recipe's training
# options. The Cloze rules (masking, max_predictions, position_counting) and the loss are the config's defaults
# (the authors') unless given on the command line.
APPLIED = ("min_user_count", "min_item_count", "max_seq_length", "mask_ratio", "window_step", "hidden_size",
           "inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob", "batch_size",
           "learning_rate", "warmup_steps", "weight_decay", "last_item_ratio", "epochs", "output_bias_init",
           "dropout_start", "dropout_stop")
CONFIG_FIELDS = {f.name for f in dataclasses.fields(BERT4RecConfig)}


def write_json(path: Path, payload: dict) -> None:
    atomic_write(path, json.dumps(payload, indent=2) + "\n")


def locate(dataset: str, path: str | None, data_dir: str) -> str:
    """What to load: ``--path``, else ``DATA_DIR/<name>/`` when it holds the dataset's file, else the shared copy
    (``../shared/data/<name>/``) when there is one, else the name itself (load_dataset downloads or explains)."""
    if path:
        return path
    spec = KNOWN_DATASETS.get(PRESETS[dataset].dataset) if dataset in PRESETS else None
    if spec is None:
        return dataset
    names = [f for f, _ in spec.files]
    if any((Path(data_dir) / spec.name / f).is_file() for f in names):
        return spec.name
    shared = [ROOT.parent / "shared" / "data" / spec.name / f for f in names]
    return str(next((p for p in shared if p.is_file()), spec.name))


def missing_file_message(dataset: str, data_dir: str, error: Exception) -> str:
    spec = KNOWN_DATASETS.get(PRESETS[dataset].dataset) if dataset in PRESETS else None
    if spec is None:
        return f"reproduce.py: {error}"
    where = " or ".join(str(Path(data_dir) / spec.name / f) for f, _ in spec.files)
    source = spec.url or spec.how_to_get
    return (f"reproduce.py: no {dataset} file here. Put {source} at {where} (or give --path FILE, with --preset "
            f"{dataset} if the file is named otherwise) and run again.\n({error})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="ml-1m",
                      help=f"{', '.join(PRESETS)} or the path of an interactions file (default: ml-1m)")
    data.add_argument("--path", help="the dataset's file, wherever it is (e.g. ../shared/data/beauty/beauty.txt)")
    data.add_argument("--preset", choices=list(PRESETS),
                      help="the settings to use for a file given by path (default: from its name, e.g. beauty.txt)")
    data.add_argument("--data-dir", default="data", help="where known datasets live: DATA_DIR/<name>/")
    data.add_argument("--min-user-count", type=int, help="k-core: drop users with fewer interactions (preset)")
    data.add_argument("--min-item-count", type=int, help="k-core: drop items with fewer interactions (preset)")
    model = parser.add_argument_group("Cloze task and training (default: the dataset's preset)")
    model.add_argument("--max-seq-length", type=int, help="L, history + [mask]")
    model.add_argument("--mask-ratio", type=float, help="share of masked positions (the paper's rho)")
    model.add_argument("--window-step", type=int, help="sliding-window step over long histories")
    model.add_argument("--last-item-ratio", type=float, help="share of mask-last samples")
    model.add_argument("--epochs", type=int, help="the schedule's length: the learning rate decays to 0 at its end")
    model.add_argument("--batch-size", type=int)
    model.add_argument("--lr", dest="learning_rate", type=float)
    model.add_argument("--warmup-steps", type=int)
    model.add_argument("--dropout", type=float, help="hidden and attention dropout")
    model.add_argument("--attn-dropout", type=float,
                       help="attention dropout alone (after --dropout); 0 lets a CPU step take PyTorch's fused attention")
    model.add_argument("--weight-decay", type=float)
    model.add_argument("--dropout-start", type=float,
                       help="train the first share of the epochs without dropout (e.g. 0.5); default 0, the paper's")
    model.add_argument("--dropout-stop", type=float,
                       help="train the epochs after this share without dropout (e.g. 0.5, 'early dropout'); default 1, "
                            "the paper's")
    model.add_argument("--output-bias-init", choices=("popularity", "zeros"),
                       help="popularity (the recipe): the output bias starts at log item popularity; zeros: the paper's")
    model.add_argument("--norm-first", action="store_true", help="pre-LN blocks (not the paper's post-LN)")
    model.add_argument("--causal", action="store_true",
                       help="BERT4Rec's causal twin (SASRec-style, not the paper's model): the same encoder with "
                            "left-to-right attention, trained to predict the next item at every position with the "
                            "full cross-entropy over all items")
    model.add_argument("--masking", choices=("fixed", "independent"),
                       help="fixed (default, the authors'): exactly min(cap, round(L x ratio)) masks; independent: "
                            "a coin per item (RecBole's)")
    model.add_argument("--max-predictions", type=int, help="the cap on masks per window for --masking fixed")
    model.add_argument("--position-counting", choices=("left", "right"),
                       help="left (default, the authors'): the oldest item is position 0; right: the [mask] is")
    model.add_argument("--loss-negatives", type=int,
                       help="0 (default): softmax over all items (the paper's); K: sampled softmax against K "
                            "uniformly drawn negatives shared by the batch")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--threads", type=int, default=0,
                     help="torch CPU threads (0 = the package's default_threads(): half the cores, at most 4)")
    run.add_argument("--budget-minutes", "--time-budget-minutes", dest="budget_minutes", type=float, default=None,
                     help="plan the learning-rate schedule to end after this much training time: every epoch "
                          "is timed, and after each one the decay is stretched or shortened to end with the budget "
                          "(--epochs is then the most it may plan); see --cut-at-budget")
    run.add_argument("--cut-at-budget", action="store_true",
                     help="with --budget-minutes: keep the --epochs schedule and stop after the epoch that passes "
                          "the budget (the learning rate may still be high then)")
    run.add_argument("--eval-users", type=int, default=0,
                     help="draw the curve on a fixed sample of this many users (0 = all); the final test uses all")
    run.add_argument("--eval-every", type=int, default=2)
    run.add_argument("--protocol", choices=("paper", "held-out"), default="paper",
                     help="paper: as the authors' code, train on everything but the test item (validation item "
                          "included), a fixed number of epochs, test the final weights; the curve is the test "
                          "split's. held-out: train without the validation item and test the epoch that was "
                          "best on it (stricter)")
    run.add_argument("--out", help="result JSON (default: benchmarks/results/reproduce_<dataset>.json)")
    run.add_argument("--checkpoint-dir", help="checkpoint.pt after every epoch (default: runs/reproduce-<dataset>)")
    run.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                     help="second phase: start from the best weights of an earlier run's checkpoint.pt, with a "
                          "fresh optimizer and schedule; its training time is added to the reported total")
    run.add_argument("--device", default="auto")
    run.add_argument("--compile", action="store_true")
    run.add_argument("--amp-cpu", action="store_true",
                     help="bf16 autocast on a CPU with native bf16 (AVX-512 BF16 or AMX); the paper trains in float32")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace, preset: Preset) -> tuple[dict, list[str]]:
    """The preset (authors' data settings + our CPU recipe) under the options given on the command line."""
    given = {k: getattr(args, k) for k in APPLIED if getattr(args, k, None) is not None}
    flags = {}
    if args.dropout is not None:
        given.update(hidden_dropout_prob=args.dropout, attn_dropout_prob=args.dropout)
        flags.update(hidden_dropout_prob="--dropout", attn_dropout_prob="--dropout")
    if args.attn_dropout is not None:
        given["attn_dropout_prob"] = args.attn_dropout
        flags["attn_dropout_prob"] = "--attn-dropout"
    options, lines = apply_preset(preset, given, recipe=True, only=APPLIED, flags=flags)
    skipped = {k: v for k, v in preset.authors.items() if k not in APPLIED and k not in CONFIG_FIELDS}
    if skipped:
        lines.append("the authors' choices not applied here: " + ", ".join(f"{k}={v}" for k, v in skipped.items()))
    return options, list(dict.fromkeys(lines))  # --dropout sets two fields: say it once


def table(name: str, paper: dict[str, float], test: dict[str, dict[str, float]]) -> str:
    """The side-by-side, the same for every dataset: the paper's row (never ours), then ours under three protocols."""
    head = (f"{'metric':8s} {'paper, sampled':>15s} {'ours, sampled':>14s} {'ours, full (seen removed)':>26s} "
            f"{'ours, full (seen kept)':>23s}")
    rows = [f"{name}: test split; sampled = the test item among 100 popularity-sampled negatives (the paper's "
            "protocol)", head]
    for m in METRICS:
        theirs = f"{paper[m]:15.4f}" if m in paper else f"{'-':>15s}"
        rows.append(f"{m:8s} {theirs} {test['sampled'][m]:14.4f} {test['full_filtered'][m]:26.4f} "
                    f"{test['full'][m]:23.4f}")
    if not paper:
        rows.append("(no paper row for this file: give --preset NAME to compare with a dataset of the paper)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)  # before machine() records the thread count; train() sets the same again
    preset = preset_for(args.path or args.dataset, args.preset)
    options, lines = settings(args, preset)
    print("\n".join(lines), flush=True)
    source = locate(args.dataset, args.path, args.data_dir)
    try:
        data = load_dataset(source, data_dir=args.data_dir, min_user_count=options.pop("min_user_count"),
                            min_item_count=options.pop("min_item_count"))
    except (DatasetUnavailable, FileNotFoundError) as error:
        print(missing_file_message(args.dataset, args.data_dir, error), file=sys.stderr)
        return 2
    stats = data.stats()
    paper_stats = preset.paper_stats
    print(f"{data.name}: {stats['users']:,} users, {stats['items']:,} items, {stats['actions']:,} actions"
          + (f" (paper, Table 1: {paper_stats['users']:,} / {paper_stats['items']:,} / {paper_stats['actions']:,})"
             if paper_stats else ""), flush=True)
    config = BERT4RecConfig(
        hidden_act="gelu", eval_every=args.eval_every, device=args.device, compile=args.compile, causal=args.causal,
        amp_cpu=args.amp_cpu,
        include_valid_in_train=args.protocol == "paper", norm_first=args.norm_first, seed=args.seed,
        eval_users=args.eval_users, threads=args.threads, **options,
        **{k: getattr(args, k) for k in ("masking", "max_predictions", "position_counting", "loss_negatives")
           if getattr(args, k) is not None})
    tag = preset.name if args.dataset in PRESETS else Path(source).stem
    tag = tag.replace("-", "") if tag == "ml-1m" else tag  # reproduce_ml1m.json, as before
    out = Path(args.out or f"benchmarks/results/reproduce_{tag}.json")
    checkpoint_dir = args.checkpoint_dir or f"runs/reproduce-{tag}"
    paper = preset.paper_row
    payload = {
        "command": " ".join([Path(sys.executable).name] + (sys.argv if argv is None else ["reproduce.py", *argv])),
        "git_commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "dataset": data.name, "source": str(source),
        "preset": preset.name, "preset_lines": lines, "stats": stats, "config": config.to_dict(),
        "protocol": args.protocol, "status": "running", "curve": [],
        "paper": ({"source": f"Sun et al. 2019, Table 2, {preset.name}, BERT4Rec (100 popularity-sampled "
                             "negatives)", **paper, "stats_table1": paper_stats} if paper else {}),
        "full_ranking_anchors": ({"protocol": "full ranking, seen items removed, test NDCG@10",
                                  **FULL_RANKING_ANCHORS[preset.name]} if preset.name in FULL_RANKING_ANCHORS else {}),
    }
    previous_seconds = 0.0
    if args.init_from:
        from minibert4rec.support.checkpoint import load_checkpoint

        earlier = load_checkpoint(args.init_from)
        previous_seconds = float(earlier["elapsed_seconds"])
        payload["init_from"] = {"checkpoint": str(args.init_from), "train_seconds": round(previous_seconds, 1),
                                "epochs": len(earlier["history"]), "config": earlier["config"]}
    write_json(out, payload)
    start, cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(row: dict) -> None:
        payload["curve"].append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
        write_json(out, payload)

    budget = args.budget_minutes * 60 if args.budget_minutes else None
    result = train(config, data, progress=False, on_epoch_end=on_epoch_end, time_budget_s=budget,
                   plan_schedule=budget is not None and not args.cut_at_budget,
                   out_dir=checkpoint_dir, init_from=args.init_from,
                   dataset_info={"dataset": str(Path(source).resolve()) if Path(source).exists() else str(source)})
    payload.update({
        "status": "done", "device": result.device, "epochs_run": int(result.history["epoch"].max()),
        "best_epoch": result.best_epoch, "train_seconds": round(result.train_seconds, 1),
        "total_train_seconds_incl_init_run": round(result.train_seconds + previous_seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1), "peak_memory_mb": round(peak_memory_mb(result.device), 1),
        "test": result.test, "valid": result.valid,
    })
    # time-to-quality: the first evaluation during training whose numbers reach the paper's test row (on the
    # test split under the paper's protocol -- watched, never used to pick the reported model -- else validation)
    watched = "test" if config.include_valid_in_train else "valid"
    reached = [r for r in payload["curve"] if paper and r.get(f"{watched}_sampled_HR@10", 0) >= paper["HR@10"]
               and r.get(f"{watched}_sampled_NDCG@10", 0) >= paper["NDCG@10"]]
    payload[f"{watched}_reaches_paper_at_seconds"] = reached[0]["elapsed_seconds"] if reached else None
    # leaving the popularity plateau: the first evaluation at sampled NDCG@10 >= 0.20 (ML-1m popularity: ~0.07)
    left = [r for r in payload["curve"] if r.get(f"{watched}_sampled_NDCG@10", 0) >= PLATEAU_EXIT_NDCG]
    payload[f"{watched}_leaves_plateau_at_seconds"] = left[0]["elapsed_seconds"] if left else None
    # the field's protocol: the first evaluation at full-ranking NDCG@10 (seen items removed) >= the RecTools
    # BERT4Rec level, on the same fixed sample of users as the curve
    level = FULL_RANKING_TARGET.get(preset.name)
    hit = [r for r in payload["curve"] if level and r.get(f"{watched}_full_filtered_NDCG@10", 0) >= level]
    payload[f"{watched}_reaches_full_target_at_seconds"] = hit[0]["elapsed_seconds"] if hit else None
    payload["full_target_NDCG@10"] = level
    write_json(out, payload)
    print(table(data.name, paper, result.test))
    anchors = FULL_RANKING_ANCHORS.get(preset.name)
    if anchors:
        print("anchors, full ranking with seen items removed, NDCG@10: " + ", ".join(
            f"{name} {value:.4f}" for name, value in anchors.items()))
    print(f"{result.train_seconds / 60:.1f} min of training on {result.device}, {payload['epochs_run']} epochs"
          + (f" (+ {previous_seconds / 60:.1f} min in the run it started from)" if previous_seconds else "")
          + f"; {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
