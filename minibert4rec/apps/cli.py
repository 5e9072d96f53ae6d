"""Command line: python -m minibert4rec {stats,download,train,evaluate,popularity,recommend,tune} ...

Each subcommand is a thin wrapper over one package function, so what the command does is what the notebooks do:
this module only parses arguments and prints (help texts are plain text: argparse prints them as written).

A mistake in the input (an option's value, a file, a checkpoint that does not fit the data) or a problem of the
machine (a full disk, a read-only folder) is reported as ONE line, "error: ...", on stderr, with exit code 2 --
the package's errors name the input, what is wrong and the fix (docs/cli_errors.md lists the classes). Ctrl-C
prints one line (how to resume, when there is a checkpoint) and exits with 130. Anything else is a bug and keeps
its traceback.

(Over ~300 lines: one small function per command plus the argument definitions and their help texts, which are
most of the file; the logic lives in the package.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..support.config import BERT4RecConfig
from ..support.runtime import set_threads
from ..support.files import atomic_write, remove_stale_temporaries

# what a user's mistake (or the machine: a full disk, a read-only folder) raises; a bug raises anything else, and
# keeps its traceback
USER_ERRORS = (ValueError, OSError)
MAX_MESSAGE = 1000  # characters of one error line (each piece of quoted input is cut shorter where it is quoted)
LOCK_NAME = ".train.lock"

# command-line flag -> config field, for the options people change most
TRAIN_OVERRIDES = {
    "epochs": int, "batch_size": int, "learning_rate": float, "max_seq_length": int, "hidden_size": int,
    "inner_size": int, "n_layers": int, "n_heads": int, "mask_ratio": float, "hidden_dropout_prob": float,
    "attn_dropout_prob": float, "hidden_act": str, "loss_type": str, "weight_decay": float, "warmup_steps": int,
    "last_item_ratio": float, "window_step": int, "eval_every": int, "patience": int, "seed": int, "device": str,
    "eval_negatives": int, "popularity_counts": str, "threads": int, "max_predictions": int,
}
CONFIG_DEFAULTS = BERT4RecConfig()
# one line per option of TRAIN_OVERRIDES: what it means (BERT4RecConfig's docstring has the long story)
OPTION_HELP = {
    "epochs": "passes over the training windows", "batch_size": "training windows per optimizer step",
    "learning_rate": "AdamW's step size", "max_seq_length": "L, the longest history the model reads (+ [mask])",
    "hidden_size": "D, the width of every item representation", "inner_size": "width of the feed-forward layer (4 x D)",
    "n_layers": "transformer blocks", "n_heads": "attention heads per block (must divide --hidden-size)",
    "mask_ratio": "share of the items the Cloze task hides", "hidden_dropout_prob": "dropout on hidden states",
    "attn_dropout_prob": "dropout on attention probabilities",
    "hidden_act": "feed-forward activation: gelu, relu, swish, tanh or sigmoid",
    "loss_type": "CE (softmax over all items) or BPR (one sampled negative)",
    "weight_decay": "AdamW's decoupled weight decay (0 = off)",
    "warmup_steps": "steps of linear learning-rate warm-up (then linear decay to 0)",
    "last_item_ratio": "share of extra samples that mask only the last item (the paper's fine-tuning trick)",
    "window_step": "stride of the sliding windows over long histories",
    "eval_every": "evaluate on the validation split every N epochs",
    "patience": "evaluations without a better validation NDCG@10 before stopping early (0 = never)",
    "seed": "random seed (weights, masks, sampled negatives)", "device": "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps",
    "eval_negatives": "popularity-sampled negatives per user in the sampled protocol (the paper's 100)",
    "popularity_counts": "what the negatives' popularity is counted on: whole sequences (the authors') or train",
    "threads": "torch CPU threads, 0 = half the cores, at most 4 (1 on a 2-core machine)",
    "max_predictions": "cap on the masked items per window (masking='fixed')",
}
# the data options; None on the command line = "not given" (with --resume: the run's own value, else these)
DATA_DEFAULTS = {"dataset": "ml-100k", "data_dir": "data", "min_user_count": 5, "min_item_count": 5}
# the config options of the popularity subcommand (what its sampled negatives depend on)
POPULARITY_OPTIONS = ("seed", "eval_negatives", "popularity_counts", "include_valid_in_train")


def print_metrics(results: dict[str, dict[str, dict[str, float]]], n_negatives: int = 100) -> None:
    """:func:`evaluate.print_metrics` (imported when first used: the command line starts without torch)."""
    from ..evaluate import print_metrics as _print

    _print(results, n_negatives)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: ...)" after each option that has a real default (not for flags or options whose help
    already names it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add_data_args(parser: argparse.ArgumentParser, resume: bool = False) -> None:
    run = "; with --resume: the run's" if resume else ""
    parser.add_argument("--dataset", help="ml-100k, ml-1m, ml-20m, beauty, steam, or a path to a ratings/.inter/"
                                          f"'user item' file (default: ml-100k{run})")
    parser.add_argument("--data-dir", help=f"download cache (default: data{run})")
    parser.add_argument("--preset", help="the paper's settings of ml-1m, ml-20m, beauty or steam for a file given by "
                                         "path (a known --dataset applies its own preset; explicit options win)")
    parser.add_argument("--min-user-count", type=int,
                        help=f"k-core: drop users with fewer interactions (default: 5{run})")
    parser.add_argument("--min-item-count", type=int,
                        help=f"k-core: drop items with fewer interactions (default: 5{run})")


# what a dataset preset sets on the command line: the paper's / authors' data and Cloze settings, not the optimizer
PRESET_KEYS = ("min_user_count", "min_item_count", "max_seq_length", "mask_ratio", "last_item_ratio", "window_step",
               "hidden_dropout_prob", "attn_dropout_prob", "max_predictions")


def _preset_options(args: argparse.Namespace, file_config: BERT4RecConfig | None = None) -> dict[str, Any]:
    """The preset of ``--dataset``/``--preset`` (``datasets.PRESETS``: ml-1m, ml-20m, beauty, steam) under the
    options the user gave; prints what it applied once per command. {} for other data (ml-100k, a plain file)."""
    from ..support.datasets import FILE_PRESET, apply_preset, preset_for

    if getattr(args, "dataset", None) is None and getattr(args, "preset", None) is None:
        return {}
    preset = preset_for(args.dataset or "", getattr(args, "preset", None))
    if preset is FILE_PRESET:
        return {}
    explicit = {k: getattr(args, k) for k in PRESET_KEYS if getattr(args, k, None) is not None}
    if file_config is not None:  # a --config file's own values win over the preset too
        explicit.update({k: getattr(file_config, k) for k in PRESET_KEYS if hasattr(file_config, k)
                         and getattr(file_config, k) != getattr(CONFIG_DEFAULTS, k) and k not in explicit})
    options, lines = apply_preset(preset, explicit, only=PRESET_KEYS)
    if not getattr(args, "_preset_printed", False):
        print("\n".join(lines))
        args._preset_printed = True
    return options


def _fill_data_args(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> None:
    """Data options that were not given: the stored run's (``--resume``), else the dataset's preset (k-core),
    else ``DATA_DEFAULTS``."""
    if stored is None and getattr(args, "dataset", None) is not None:
        for key, value in _preset_options(args).items():
            if key in DATA_DEFAULTS and getattr(args, key, None) is None:
                setattr(args, key, value)
    for key, default in DATA_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, (stored or {}).get(key, default))


def _load(args: argparse.Namespace):
    from ..data import load_dataset

    _fill_data_args(args)
    return load_dataset(args.dataset, data_dir=args.data_dir, min_user_count=args.min_user_count,
                        min_item_count=args.min_item_count)


def cmd_stats(args: argparse.Namespace) -> int:
    from ..data import load_interactions

    _fill_data_args(args)  # the documented defaults first: --dataset ml-100k, --data-dir data (relative to here)
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
    from ..data import download

    path = download(args.dataset, data_dir=args.data_dir, source=args.source)
    print(f"{args.dataset} is ready in {path}")
    return 0


def _config_from_args(args: argparse.Namespace) -> BERT4RecConfig:
    config = BERT4RecConfig.load(args.config) if args.config else BERT4RecConfig()
    preset = _preset_options(args, config if args.config else None)  # the dataset's settings, under the user's
    changes: dict[str, Any] = {k: v for k, v in preset.items() if k not in DATA_DEFAULTS}
    changes.update({k: getattr(args, k) for k in TRAIN_OVERRIDES if getattr(args, k) is not None})
    if args.causal:
        changes["causal"] = True
    if args.compile:
        changes["compile"] = True
    if args.amp_cpu:
        changes["amp_cpu"] = True
    if args.include_valid_in_train:
        changes["include_valid_in_train"] = True
    return config.replace(**changes)


def _dataset_info(args: argparse.Namespace) -> dict[str, Any]:
    """What the checkpoint records about the data, so that evaluate, recommend and --resume can reload it."""
    info = {"dataset": str(args.dataset), "data_dir": str(Path(args.data_dir).resolve()),
            "min_user_count": args.min_user_count, "min_item_count": args.min_item_count}
    if Path(args.dataset).exists():
        info["dataset"] = str(Path(args.dataset).resolve())
    return info


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config values given on the command line (a --config file counts as given)."""
    given = {}
    if args.config:  # what the file sets (the values that differ from the defaults)
        loaded = BERT4RecConfig.load(args.config)
        given = {k: v for k, v in loaded.to_dict().items() if v != getattr(CONFIG_DEFAULTS, k)}
    given |= {k: getattr(args, k) for k in TRAIN_OVERRIDES if getattr(args, k) is not None}
    given |= {k: True for k in ("causal", "compile", "amp_cpu", "include_valid_in_train") if getattr(args, k)}
    given.pop("threads", None)  # not part of the run's identity
    given.pop("extra", None)
    return given


def _resume_config(args: argparse.Namespace, out: Path, state: dict[str, Any]) -> BERT4RecConfig:
    """The run's own config; options given on the command line must agree with it (--threads may differ)."""
    stored = BERT4RecConfig.from_dict(state["config"])
    differ = {k: v for k, v in _given_options(args).items() if getattr(stored, k) != v}
    if differ:
        shown = ", ".join(f"{k}={v!r} (the run has {getattr(stored, k)!r})" for k, v in differ.items())
        raise ValueError(f"--resume continues the run in {out} with its own config ({out / 'config.json'}); "
                         f"the command line asks for {shown}. Drop those options, or start a new run with "
                         "another --out.")
    return stored.replace(threads=args.threads or 0)


def _refuse_to_overwrite(out: Path) -> None:
    """A finished run (metrics.json) or an unfinished one (checkpoint.pt) is kept unless --overwrite is given."""
    from ..support.checkpoint import load_checkpoint

    if (out / "metrics.json").exists():
        raise ValueError(f"{out} already holds a finished run ({out / 'metrics.json'}); choose another --out, or add "
                         "--overwrite to replace it.")
    if (out / "checkpoint.pt").exists():
        try:
            state = load_checkpoint(out / "checkpoint.pt")
            where = f" (epoch {state['epoch']} of {state['config'].get('epochs', '?')})"
        except ValueError:
            where = ""
        raise ValueError(f"{out} holds an unfinished run{where}: continue it with --resume, or add --overwrite to "
                         "start over.")


class _RunLock:
    """An exclusive lock on ``out/.train.lock`` (``fcntl.flock``) held while one ``train`` writes into ``out``: a
    second ``train`` on the same folder is refused instead of interleaving its checkpoints with the first one's.
    The kernel releases the lock when the process ends, however it ends. (No lock where fcntl is missing.)"""

    def __init__(self, out: Path) -> None:
        self.path, self.file = out / LOCK_NAME, None

    def __enter__(self) -> "_RunLock":
        try:
            import fcntl
        except ImportError:  # Windows
            return self
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            self.file = None
            raise ValueError(f"another train is running in {self.path.parent} (it holds {self.path}); wait for it to "
                             "finish, or choose another --out.") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.close()  # releases the lock


def _remove_if_empty(out: Path) -> bool:
    """Delete ``out`` when it holds nothing but what this command wrote before failing (config.json, the lock);
    True when it was removed."""
    try:
        left = {p.name for p in out.iterdir()}
    except OSError:
        return False
    if left <= {"config.json", LOCK_NAME}:
        for name in left:
            (out / name).unlink(missing_ok=True)
        try:
            out.rmdir()
        except OSError:
            return False
        return True
    return False


def cmd_train(args: argparse.Namespace) -> int:
    from ..support.preflight import check_device

    typed = {key: getattr(args, key) for key in DATA_DEFAULTS}  # what the user typed (None = not given)
    if not args.resume:
        check_device(_config_from_args(args).device)  # first: a bad option is reported before torch is even imported
    from ..distributed import init_from_env
    from ..support.preflight import check_before_training
    from ..support.checkpoint import load_checkpoint
    from ..train import choose_device, train

    if args.resume and args.overwrite:
        raise ValueError("give --resume (continue the run in --out) or --overwrite (start it over), not both.")
    resume_from, state = None, None
    if args.resume:
        _fill_data_args(args)  # only to find runs/<dataset> when --out is not given
        out = Path(args.out or f"runs/{Path(args.dataset).stem if Path(args.dataset).exists() else args.dataset}")
        resume_from = out / "checkpoint.pt"
        if not resume_from.exists():
            raise FileNotFoundError(f"--resume: {resume_from} does not exist, so there is no run to continue; "
                                    "check --out, or start the run without --resume.")
        state = load_checkpoint(resume_from)
        config = _resume_config(args, out, state)
        check_device(config.device)
        stored = dict(state.get("dataset") or {})
        for key in DATA_DEFAULTS:  # what the command line says must be what the run was trained on
            given = typed[key]  # only what was typed: a default is not a request
            if key in stored and given is not None and key != "data_dir" and str(given) != str(stored[key]) \
                    and str(Path(str(given)).resolve()) != str(stored[key]):
                raise ValueError(f"the run in {out} was trained with --{key.replace('_', '-')} {stored[key]}, "
                                 f"not {given}; drop the option or give the run's value.")
        for key in DATA_DEFAULTS:  # the run's data, wherever it was read from
            if key in stored:
                setattr(args, key, stored[key])
        parallel = init_from_env(config.device)  # under torchrun: join the other ranks; else rank 0 of 1, no set-up
        data = _load(args)
    else:
        config = _config_from_args(args)
        parallel = init_from_env(config.device)  # (the same; a run without torchrun sets up nothing)
        with parallel.main_first():  # rank 0 downloads, if needed, before the others read
            data = _load(args)
        check_before_training(config, data, choose_device(config.device))  # before anything is written
        out = Path(args.out or f"runs/{data.name}")
        if not args.overwrite:
            _refuse_to_overwrite(out)
    args._run_folder = out
    created = not out.exists()
    lock = _RunLock(out)
    try:
        if parallel.is_main:  # [distributed] one writer
            out.mkdir(parents=True, exist_ok=True)
            lock.__enter__()
            if args.overwrite and state is None:
                for name in ("metrics.json", "history.csv", "checkpoint.pt"):
                    (out / name).unlink(missing_ok=True)
            remove_stale_temporaries(out)
            config.save(out / "config.json")
        return _train_into(args, out, config, data, state, resume_from, parallel, train)
    except BaseException:
        lock.__exit__()
        if parallel.is_main and created and _remove_if_empty(out):
            args._run_folder = None  # nothing left to resume
        raise
    finally:
        lock.__exit__()


def _train_into(args: argparse.Namespace, out: Path, config: BERT4RecConfig, data: Any, state: dict | None,
                resume_from: Path | None, parallel: Any, train: Any) -> int:
    dataset_info = _dataset_info(args)
    if state is not None and parallel.is_main:
        print(f"resuming {out} after epoch {state['epoch']} of {config.epochs}")
    if parallel.is_main:
        print(f"training BERT4Rec on {data.name}: {data.n_users:,} users, {data.n_items:,} items -> {out}")
    budget = getattr(args, "budget_minutes", None)
    if budget is not None and not (budget > 0 and budget < float("inf")):
        raise ValueError(f"--budget-minutes {budget} must be a positive number of minutes.")
    result = train(config, data, out_dir=out, resume_from=resume_from, progress=not args.quiet,
                   dataset_info=dataset_info, time_budget_s=budget * 60 if budget else None,
                   plan_schedule=budget is not None)
    parallel.close()
    if not parallel.is_main:  # every rank holds the same results; rank 0 writes and prints them
        return 0
    summary = {"valid": result.valid, "test": result.test, "best_epoch": result.best_epoch,
               "train_seconds": result.train_seconds, "device": result.device, "dataset": data.name, **result.extra}
    atomic_write(out / "history.csv", result.history.to_csv(index=False))
    atomic_write(out / "metrics.json", json.dumps(summary, indent=2) + "\n")  # last: it means the run finished
    print(f"best epoch {result.best_epoch}, {result.train_seconds:.0f}s of training on {result.device}")
    print_metrics({"valid": result.valid, "test": result.test}, result.config.eval_negatives)
    return 0


def _checkpoint_file(path: str) -> Path:
    """``--checkpoint`` as given: a checkpoint file, or a run folder holding ``checkpoint.pt``."""
    given = Path(path)
    if given.is_dir():
        inside = given / "checkpoint.pt"
        if not inside.is_file():
            raise FileNotFoundError(f"--checkpoint {given} is a folder, and it holds no checkpoint.pt; give the file "
                                    f"that train --out {given} writes, {inside}.")
        print(f"(reading {inside})", file=sys.stderr)
        return inside
    return given


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..support.checkpoint import check_checkpoint_data, checkpoint_data, load_checkpoint, model_from_checkpoint
    from ..evaluate import evaluate_split

    set_threads(0)
    checkpoint = _checkpoint_file(args.checkpoint)
    state = load_checkpoint(checkpoint)
    data = checkpoint_data(state)
    check_checkpoint_data(state, data, f"checkpoint {checkpoint}")  # same users, items and sequences
    model = model_from_checkpoint(state)
    config = BERT4RecConfig.from_dict(state["config"])  # the run's config: its seed and negatives, as in training
    print_metrics({"test": evaluate_split(model, data, config, "test")}, config.eval_negatives)
    return 0


def cmd_popularity(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_popularity

    set_threads(0)
    if args.checkpoint:  # the baseline of that run: its data, its config (seed, negatives, counts)
        from ..support.checkpoint import check_checkpoint_data, checkpoint_data, load_checkpoint

        given = [f"--{k.replace('_', '-')}" for k in (*DATA_DEFAULTS, "config", *POPULARITY_OPTIONS)
                 if getattr(args, k, None) not in (None, False)]
        if given:
            raise ValueError(f"popularity --checkpoint evaluates with the run's own data and config; drop {', '.join(given)}.")
        checkpoint = _checkpoint_file(args.checkpoint)
        state = load_checkpoint(checkpoint)
        data = checkpoint_data(state)
        check_checkpoint_data(state, data, f"checkpoint {checkpoint}")
        config = BERT4RecConfig.from_dict(state["config"])
    else:
        config = BERT4RecConfig.load(args.config) if args.config else BERT4RecConfig()
        changes = {k: getattr(args, k) for k in POPULARITY_OPTIONS if getattr(args, k) not in (None, False)}
        config = config.replace(**changes)
        data = _load(args)
    print(f"popularity baseline on {data.name}: seed {config.seed}, {config.eval_negatives} sampled negatives "
          f"counted on the {'whole sequences' if config.popularity_counts == 'whole' else 'training part'}")
    print_metrics({split: evaluate_popularity(data, split, config=config) for split in args.split}, config.eval_negatives)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from ..support.checkpoint import check_checkpoint_data, checkpoint_data, load_checkpoint, model_from_checkpoint
    from .recommend import read_users_file, recommend_raw, recommend_users

    set_threads(0)
    checkpoint = _checkpoint_file(args.checkpoint)
    state = load_checkpoint(checkpoint)
    data = checkpoint_data(state)
    check_checkpoint_data(state, data, f"checkpoint {checkpoint}", sequences=False)  # the same item mapping
    model = model_from_checkpoint(state)
    if args.users_file:
        users = read_users_file(args.users_file, data)
        table = recommend_users(model, data, users, k=args.k, exclude_seen=not args.include_seen)
        print(f"top {args.k} next items for {len(users)} user{'s' if len(users) != 1 else ''}"
              f"{' (history items removed)' if not args.include_seen else ''}:")
        print(table.to_string(index=False))
        return 0
    seen, top = recommend_raw(model, data, args.items.split(","), k=args.k, exclude_seen=not args.include_seen)
    print(f"history ({len(seen)} item{'s' if len(seen) != 1 else ''}, oldest first):")
    print(seen.to_string())
    print(f"\ntop {args.k} next items{' (history items removed)' if not args.include_seen else ''}:")
    print(top.to_string(index=False))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ..support.preflight import check_device
    from .tune import check_max_trials, check_search, parse_hyper_file, run_search

    check_max_trials(args.max_trials)
    base = _config_from_args(args)
    space = parse_hyper_file(args.params_file)
    check_search(base, space)  # before any download or training
    check_device(base.device)
    data = _load(args)
    run_search(base, space, data, max_trials=args.max_trials, out=args.out, progress=not args.quiet)
    return 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a mistaken option reported like every other mistake: one line, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        message = " ".join(message.split())
        if len(message) > MAX_MESSAGE:  # e.g. a 5,000-digit --seed, quoted back by argparse
            message = message[:MAX_MESSAGE - 1] + "…"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ..data import KNOWN_DATASETS

    parser = ArgumentParser(prog="python -m minibert4rec", description=__doc__.splitlines()[0],
                            formatter_class=_HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, helptext: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=helptext, description=description or helptext[0].upper() + helptext[1:],
                              formatter_class=_HelpFormatter)

    p = add("stats", "dataset statistics table (users, items, actions, avg. length, density)")
    _add_data_args(p)
    p.set_defaults(func=cmd_stats)

    downloadable = [name for name, spec in KNOWN_DATASETS.items() if spec.url]
    p = add("download", "download a MovieLens dataset into --data-dir (checksum-verified)")
    p.add_argument("--dataset", default="ml-100k", choices=downloadable, help="the dataset to download")
    p.add_argument("--data-dir", default="data", help="where it is unpacked, into DATA_DIR/DATASET/")
    p.add_argument("--source", default="auto", choices=["auto", "grouplens", "recbole"],
                   help="auto: GroupLens, and for ml-100k the recbole wheel on PyPI when GroupLens is unreachable")
    p.set_defaults(func=cmd_download)

    for name, func, helptext in (("train", cmd_train, "train BERT4Rec and print validation/test metrics"),
                                 ("tune", cmd_tune, "hyper-parameter search from a RecBole hyper.test file")):
        p = add(name, helptext)
        _add_data_args(p, resume=name == "train")
        p.add_argument("--config", metavar="FILE",
                       help="a .json/.yaml config file: its values replace the defaults below, and the options "
                            "given on the command line override it")
        for option, kind in TRAIN_OVERRIDES.items():
            flag = "--lr" if option == "learning_rate" else "--" + option.replace("_", "-")
            default = getattr(CONFIG_DEFAULTS, option)
            what = OPTION_HELP[option]
            shown = "max_seq_length // 2" if option == "window_step" else default
            metavar = {int: "N", float: "X", str: "NAME"}[kind]
            p.add_argument(flag, dest=option, type=kind, default=None, metavar=metavar,
                           help=f"{what} (default: {shown})")
        p.add_argument("--causal", action="store_true", help="unidirectional (SASRec-style) variant")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")
        p.add_argument("--amp-cpu", action="store_true",
                       help="bf16 matrix products on a CPU that has them natively (AVX-512 BF16 or AMX); the paper "
                            "trains in float32")
        p.add_argument("--include-valid-in-train", action="store_true",
                       help="the paper's protocol: train on the validation item too, no model selection")
        if name == "train":
            p.add_argument("--out", help="output folder (default: runs/DATASET)")
            p.add_argument("--resume", action="store_true",
                           help="continue the unfinished run in --out from its last checkpoint, with its config")
            p.add_argument("--overwrite", action="store_true",
                           help="replace the run in --out (without it, train refuses to touch an existing run)")
            p.add_argument("--budget-minutes", type=float, default=None, metavar="X",
                           help="train for about X minutes: every epoch is timed, and the learning-rate decay "
                                "is planned (and planned again after each epoch) to end when the time is up (--epochs is "
                                "then the most it may plan)")
        else:
            p.add_argument("--out", help="output folder (default: runs/tune-DATASET)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "tune":
            p.add_argument("--params-file", required=True, help="RecBole hyper.test file")
            p.add_argument("--max-trials", type=int, default=None, metavar="N",
                           help="at most this many trials, N >= 1 (default: the whole grid, or 10 random draws)")
        p.set_defaults(func=func)

    p = add("evaluate", "test metrics of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train, or its run folder")
    p.set_defaults(func=cmd_evaluate)

    p = add("popularity", "metrics of the popularity baseline, through the models' evaluation path",
            description="Metrics of the popularity baseline, evaluated as the models are: with --checkpoint, on that "
                        "run's data with its config (the same negatives as its evaluate); else on --dataset with "
                        "--config and the options below (the trainer's defaults otherwise).")
    _add_data_args(p)
    p.add_argument("--checkpoint", help="a run (checkpoint.pt or its folder): evaluate on its data, with its config")
    p.add_argument("--config", metavar="FILE", help="a .json/.yaml config file (seed, eval_negatives, ...)")
    p.add_argument("--seed", type=int, metavar="N", help=f"seed of the sampled negatives (default: {CONFIG_DEFAULTS.seed})")
    p.add_argument("--eval-negatives", type=int, metavar="N",
                   help=f"sampled negatives per user (default: {CONFIG_DEFAULTS.eval_negatives})")
    p.add_argument("--popularity-counts", metavar="NAME",
                   help="what the negatives' popularity is counted on: whole sequences or train "
                        f"(default: {CONFIG_DEFAULTS.popularity_counts})")
    p.add_argument("--include-valid-in-train", action="store_true",
                   help="the paper's protocol: the validation item counts as training")
    p.add_argument("--split", nargs="+", choices=["valid", "test"], default=["test"], help="the held-out split(s)")
    p.set_defaults(func=cmd_popularity)

    p = add("recommend", "top-k items for a history of raw item ids, or for many users at once")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train, or its run folder")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--items", help="comma-separated raw item ids, oldest first, e.g. 1,2,3")
    which.add_argument("--users-file", metavar="FILE",
                       help="many users in one batched pass: per line a raw user id of the run's data (its whole "
                            "history) or 'history: item,item,...'")
    p.add_argument("-k", type=int, default=10, help="how many items to recommend")
    p.add_argument("--include-seen", action="store_true", help="do not remove the history's items")
    p.set_defaults(func=cmd_recommend)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's mistake (``USER_ERRORS``) -> one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print("error: " + _one_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run = getattr(args, "_run_folder", None)
        if run is not None and (Path(run) / "checkpoint.pt").is_file():
            print(f"interrupted; resume with: python -m minibert4rec train --resume --out {run}", file=sys.stderr)
        else:
            print("interrupted" + (" before the first checkpoint; nothing to resume" if args.command == "train"
                                   else ""), file=sys.stderr)
        return 130


def _one_line(error: BaseException) -> str:
    """The error as one line, at most ``MAX_MESSAGE`` characters; an OSError without its own words gets the path
    and the cause (``[Errno 5] ...`` -> "cannot read PATH: Input/output error")."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror and error.filename and not text.startswith(str(error.filename)) \
            and text.startswith("[Errno"):
        text = f"{error.filename}: {error.strerror}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"
