"""Command line: ``python -m minibert4rec {stats,download,train,evaluate,recommend,tune} ...``.

Each subcommand is a thin wrapper over one package function, so what the command does is what the notebooks do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .config import BERT4RecConfig

METRIC_ORDER = ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"]

# command-line flag -> config field, for the options people change most
TRAIN_OVERRIDES = {
    "epochs": int, "batch_size": int, "learning_rate": float, "max_seq_length": int, "hidden_size": int,
    "inner_size": int, "n_layers": int, "n_heads": int, "mask_ratio": float, "hidden_dropout_prob": float,
    "attn_dropout_prob": float, "hidden_act": str, "loss_type": str, "weight_decay": float, "warmup_steps": int,
    "last_item_ratio": float, "window_step": int, "eval_every": int, "patience": int, "seed": int, "device": str,
}


def metrics_table(results: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """``{"test": {"full": {...}, "sampled": {...}}}`` -> one row per (split, protocol), one column per metric."""
    rows = {f"{split} / {protocol}": values for split, by_protocol in results.items() for protocol, values in by_protocol.items()}
    table = pd.DataFrame(rows).T
    return table[[m for m in METRIC_ORDER if m in table.columns]]


def print_metrics(results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(metrics_table(results).to_string(float_format=lambda v: f"{v:.4f}"))


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="ml-100k",
                        help="ml-100k, ml-1m, ml-20m, beauty, steam, or a path to a ratings/.inter/'user item' file")
    parser.add_argument("--data-dir", default="data", help="download cache (default: data/)")
    parser.add_argument("--min-user-count", type=int, default=5, help="k-core: drop users with fewer interactions")
    parser.add_argument("--min-item-count", type=int, default=5, help="k-core: drop items with fewer interactions")


def _load(args: argparse.Namespace):
    from .data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, min_user_count=args.min_user_count,
                        min_item_count=args.min_item_count)


def cmd_stats(args: argparse.Namespace) -> int:
    from .data import load_interactions

    raw = load_interactions(args.dataset, data_dir=args.data_dir)
    data = _load(args)
    stats = data.stats()
    table = pd.DataFrame([
        {"dataset": data.name, "": "raw", "users": raw["user"].nunique(), "items": raw["item"].nunique(),
         "actions": len(raw), "avg. length": len(raw) / raw["user"].nunique(),
         "density": len(raw) / (raw["user"].nunique() * raw["item"].nunique())},
        {"dataset": data.name, "": f"{args.min_user_count}/{args.min_item_count}-core", "users": stats["users"],
         "items": stats["items"], "actions": stats["actions"], "avg. length": stats["avg_length"],
         "density": stats["density"]},
    ])
    print(table.to_string(index=False, formatters={
        "users": "{:,}".format, "items": "{:,}".format, "actions": "{:,}".format,
        "avg. length": "{:.1f}".format, "density": "{:.2%}".format}))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    path = download(args.dataset, data_dir=args.data_dir)
    print(f"{args.dataset} is ready in {path}")
    return 0


def _config_from_args(args: argparse.Namespace) -> BERT4RecConfig:
    config = BERT4RecConfig.load(args.config) if args.config else BERT4RecConfig()
    changes: dict[str, Any] = {k: getattr(args, k) for k in TRAIN_OVERRIDES if getattr(args, k) is not None}
    if args.causal:
        changes["causal"] = True
    if args.compile:
        changes["compile"] = True
    if args.include_valid_in_train:
        changes["include_valid_in_train"] = True
    return config.replace(**changes)


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import init_from_env
    from .train import train

    config = _config_from_args(args)
    parallel = init_from_env(config.device)  # under torchrun: join the other ranks; else rank 0 of 1, nothing set up
    with parallel.main_first():  # rank 0 downloads, if needed, before the others read
        data = _load(args)
    out = Path(args.out or f"runs/{data.name}")
    resume = out / "checkpoint.pt" if args.resume and (out / "checkpoint.pt").exists() else None
    if parallel.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")
    dataset_info = {"dataset": str(args.dataset), "data_dir": str(Path(args.data_dir).resolve()),
                    "min_user_count": args.min_user_count, "min_item_count": args.min_item_count}
    if Path(args.dataset).exists():
        dataset_info["dataset"] = str(Path(args.dataset).resolve())
    if parallel.is_main:
        print(f"training BERT4Rec on {data.name}: {data.n_users:,} users, {data.n_items:,} items -> {out}"
              + (f" (resuming {resume})" if resume else ""))
    result = train(config, data, out_dir=out, progress=not args.quiet, dataset_info=dataset_info, resume_from=resume)
    parallel.close()
    if not parallel.is_main:  # every rank holds the same results; rank 0 writes and prints them
        return 0
    summary = {"valid": result.valid, "test": result.test, "best_epoch": result.best_epoch,
               "train_seconds": result.train_seconds, "device": result.device, "dataset": data.name, **result.extra}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out / "metrics.json")
    result.history.to_csv(out / "history.csv", index=False)
    print(f"best epoch {result.best_epoch}, {result.train_seconds:.0f}s of training on {result.device}")
    print_metrics({"valid": result.valid, "test": result.test})
    return 0


def _checkpoint_data(state: dict[str, Any]):
    from .data import load_dataset

    info = state.get("dataset") or {}
    if "dataset" not in info:
        raise ValueError("this checkpoint does not record its dataset; it was not written by `minibert4rec train`.")
    return load_dataset(info["dataset"], data_dir=info.get("data_dir", "data"),
                        min_user_count=info.get("min_user_count", 5), min_item_count=info.get("min_item_count", 5))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train import evaluate, load_checkpoint, model_from_checkpoint

    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    data = _checkpoint_data(state)
    split = data.split()
    kwargs = dict(max_len=model.config.max_seq_length, mask_id=data.mask_id, seed=model.config.seed,
                  n_negatives=model.config.eval_negatives)
    counts = data.item_counts(model.config.include_valid_in_train)  # popularity of the negatives, as in training
    test = evaluate(model, split.test_inputs, split.test_targets, counts, **kwargs)
    print_metrics({"test": test})
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from .recommend import recommend
    from .train import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    data = _checkpoint_data(state)
    new_id = {str(raw): i + 1 for i, raw in enumerate(data.item_ids)}
    try:
        raw_items = [s.strip() for s in args.items.split(",") if s.strip()]
        history = [new_id[s] for s in raw_items]
    except KeyError as missing:
        raise ValueError(f"item {missing} is not in {data.name} after preprocessing; give raw dataset item ids "
                         f"(e.g. MovieLens movie ids) separated by commas.") from None
    rows = [{"rank": r + 1, "item": data.item_ids[i - 1], "title": data.title(i), "score": round(s, 3)}
            for r, (i, s) in enumerate(recommend(model, history, k=args.k, exclude_seen=not args.include_seen))]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tune import run_search

    run_search(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minibert4rec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="dataset statistics table (users, items, actions, avg. length, density)")
    _add_data_args(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("download", help="download a MovieLens dataset into --data-dir (checksum-verified)")
    _add_data_args(p)
    p.set_defaults(func=cmd_download)

    for name, func, helptext in (("train", cmd_train, "train BERT4Rec and print validation/test metrics"),
                                 ("tune", cmd_tune, "hyper-parameter search from a RecBole hyper.test file")):
        p = sub.add_parser(name, help=helptext)
        _add_data_args(p)
        p.add_argument("--config", help="a .json/.yaml config file (command-line options override it)")
        for option, kind in TRAIN_OVERRIDES.items():
            flag = "--lr" if option == "learning_rate" else "--" + option.replace("_", "-")
            p.add_argument(flag, dest=option, type=kind, default=None, help=f"config.{option}")
        p.add_argument("--causal", action="store_true", help="unidirectional (SASRec-style) variant")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")
        p.add_argument("--include-valid-in-train", action="store_true",
                       help="the paper's protocol: train on the validation item too, no model selection")
        p.add_argument("--out", help="output folder (default runs/<dataset>)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "train":
            p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt if it exists "
                           "(same config; what torchrun --max-restarts needs)")
        if name == "tune":
            p.add_argument("--params-file", required=True, help="RecBole hyper.test file")
            p.add_argument("--max-trials", type=int, default=None, help="at most this many trials")
        p.set_defaults(func=func)

    p = sub.add_parser("evaluate", help="test metrics of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-k items for a history of raw item ids")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--items", required=True, help="comma-separated raw item ids, oldest first, e.g. 1,2,3")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--include-seen", action="store_true", help="do not remove the history's items")
    p.set_defaults(func=cmd_recommend)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
