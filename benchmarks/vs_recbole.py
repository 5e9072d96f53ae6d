"""minibert4rec vs RecBole 1.2.1's BERT4Rec on ml-100k: same data, same model config, same threads, same budget.

RecBole needs older pins, so it lives in its own virtual environment, made once by:

    python -m venv .venv-recbole
    .venv-recbole/bin/pip install torch==2.13.0
    .venv-recbole/bin/pip install recbole==1.2.1 "numpy<2" "pandas<2.2" "setuptools>=77.0.3,<81"

(``--make-venv`` runs exactly these commands.) Then

    python benchmarks/vs_recbole.py --budget-minutes 10 --out benchmarks/results/vs_recbole.json

trains both for the same wall-clock budget, one after the other (never at the same time), with
``torch.set_num_threads(--threads)`` in both, and reports what a user feels: the validation NDCG@10 against wall
time, the time each needs to reach RecBole's best validation NDCG@10, the test NDCG@10 / HR@10 each
reaches within the budget, training throughput in masked tokens per second, full-ranking and 100-negative
evaluation time, and peak memory. "Epoch" means different work in the two (RecBole's loader turns every prefix of
every user into a training instance), so epochs are reported but never compared.

Both sides are compared under one protocol: full ranking with the user's seen items removed, which is what
RecBole's full-sort evaluation does and what both trainers select their best epoch on. Ours is also reported with
seen items kept (``test_full``, ``valid_full_NDCG@10``), labelled, never set against RecBole's.

RecBole is run twice when ``--stock`` is given: with its autograd anomaly detection switched off (the fair, faster
speed) and stock (RecBole 1.2.1 switches anomaly detection on when its sequential models are imported).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, peak_memory_mb, provenance

from minibert4rec.support.files import atomic_write

VENV = ROOT / ".venv-recbole"

# The RecBole side runs in its own interpreter; this is its script. It prints one JSON line at the end.
RECBOLE_SCRIPT = r'''
import json, resource, sys, time
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})  # RecBole reloads its own pickled Config
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import BERT4Rec
from recbole.trainer import Trainer
from recbole.utils import init_seed
torch.autograd.set_detect_anomaly(args["anomaly"])
common = {
    "seed": 42, "reproducibility": True, "state": "WARNING", "show_progress": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)",
    "MAX_ITEM_LIST_LENGTH": args["max_len"], "train_batch_size": args["batch_size"], "eval_batch_size": 4096,
    "learning_rate": args["lr"], "epochs": 10_000, "stopping_step": 10_000, "eval_step": 1,
    "metrics": ["Hit", "NDCG", "MRR"], "topk": [1, 5, 10], "valid_metric": "NDCG@10",
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "checkpoint_dir": args["checkpoint_dir"], "worker": 0, "train_neg_sample_args": None,
}
config = Config(model="BERT4Rec", dataset="ml-100k", config_dict=common)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
model = BERT4Rec(config, train_data.dataset).to(config["device"])
trainer = Trainer(config, model)
curve, start = [], time.perf_counter()
class BudgetSpent(Exception):
    pass
def on_valid(epoch, score):
    # RecBole's full-sort score removes the user's seen items: our full_filtered protocol
    curve.append({"epoch": epoch + 1, "elapsed_seconds": time.perf_counter() - start,
                  "valid_full_filtered_NDCG@10": float(score)})
    if time.perf_counter() - start > args["budget_s"]:
        raise BudgetSpent  # called after RecBole saved its best model: stop here, test that model
try:
    trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=on_valid)
except BudgetSpent:
    pass
train_seconds = time.perf_counter() - start
t0 = time.perf_counter()
test_full = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
full_eval_seconds = time.perf_counter() - t0
sampled = {}
if args["sampled_eval"]:
    config_pop = Config(model="BERT4Rec", dataset="ml-100k", config_dict={**common, "eval_args": {**common["eval_args"], "mode": "pop100"}})
    init_seed(config_pop["seed"], config_pop["reproducibility"])
    _, _, test_pop = data_preparation(config_pop, create_dataset(config_pop))
    t0 = time.perf_counter()
    sampled = trainer.evaluate(test_pop, load_best_model=False, model_file=None, show_progress=False)
    sampled = {"metrics": {k: float(v) for k, v in sampled.items()}, "seconds": time.perf_counter() - t0}
n_train = len(train_data.dataset)
print("RESULT " + json.dumps({
    "curve": curve, "train_seconds": train_seconds, "epochs": len(curve), "train_instances_per_epoch": n_train,
    "test_full": {k: float(v) for k, v in test_full.items()}, "full_eval_seconds": full_eval_seconds,
    "test_sampled": sampled, "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1), "actions": int(dataset.inter_num),
}))
'''


def make_venv() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["recbole==1.2.1", "numpy<2", "pandas<2.2", "setuptools>=77.0.3,<81"], check=True)


def run_recbole(args: argparse.Namespace, anomaly: bool) -> dict:
    payload = {"threads": args.threads, "max_len": args.max_len, "batch_size": args.recbole_batch_size,
               "lr": args.lr, "budget_s": args.budget_minutes * 60, "anomaly": anomaly, "sampled_eval": True}
    with tempfile.TemporaryDirectory() as tmp:
        payload["checkpoint_dir"] = tmp
        script = Path(tmp) / "recbole_side.py"
        script.write_text(RECBOLE_SCRIPT)
        # RecBole finds ml-100k inside its wheel (recbole/dataset_example); run it from a scratch folder
        proc = subprocess.run([str(VENV / "bin" / "python"), str(script), json.dumps(payload)], cwd=tmp,
                              capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"RecBole run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run_ours(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.data import load_dataset
    from minibert4rec.evaluate import evaluate
    from minibert4rec.train import train

    data = load_dataset("ml-100k", data_dir=args.data_dir)
    # RecBole's BERT4Rec defaults: hidden 64, inner 256, 2 layers, 2 heads, dropout 0.2, mask_ratio 0.2, CE, gelu
    config = BERT4RecConfig(max_seq_length=args.max_len, batch_size=args.batch_size, learning_rate=args.lr,
                            epochs=args.our_epochs, device="cpu", warmup_steps=100)
    curve: list[dict] = []
    result = train(config, data, progress=False, time_budget_s=args.budget_minutes * 60,
                   on_epoch_end=lambda row: curve.append(
                       {k: row[k] for k in ("epoch", "elapsed_seconds", "valid_full_filtered_NDCG@10",
                                            "valid_full_NDCG@10", "tokens_per_s")}))
    split = data.split()
    timings = {}
    for protocol in ("full_filtered", "sampled"):  # full_filtered: seen items removed, as RecBole ranks
        t0 = time.perf_counter()
        evaluate(result.model, split.test_inputs, split.test_targets, data.item_counts(), protocols=(protocol,),
                 max_len=config.max_seq_length, mask_id=data.mask_id)
        timings[protocol] = time.perf_counter() - t0
    return {"curve": curve, "train_seconds": result.train_seconds, "epochs": len(curve),
            "test_full_filtered": result.test["full_filtered"], "test_full": result.test["full"],
            "test_sampled": result.test["sampled"], "full_eval_seconds": timings["full_filtered"],
            "sampled_eval_seconds": timings["sampled"], "tokens_per_s": float(result.history["tokens_per_s"].median()),
            "peak_memory_mb": peak_memory_mb("cpu"), **data.stats()}


def first_time_reaching(curve: list[dict], target: float, key: str) -> float | None:
    """Seconds of training until ``curve[key]`` (a validation NDCG@10) first reached ``target``; None: never."""
    hits = [row["elapsed_seconds"] for row in curve if row.get(key, -1) >= target]
    return hits[0] if hits else None


def recbole_masked_tokens_per_epoch(data_dir: str, max_len: int, mask_ratio: float = 0.2, ft_ratio: float = 0.5) -> dict:
    """Expected number of labelled (masked) positions in one RecBole BERT4Rec epoch on ml-100k.

    RecBole 1.2.1 (``data/transform.py``, MaskItemSequence) trains on every prefix of every user's training part
    (the last max_len items before each target). Per batch, with probability ``ft_ratio`` it masks only the last
    item of each prefix (1 label), otherwise each item with probability ``mask_ratio``, keeping at most
    ``int(mask_ratio * max_len)`` labels. So one prefix of length l carries on average
    ``ft_ratio * 1 + (1 - ft_ratio) * E[min(Binomial(l, mask_ratio), cap)]`` labels. The prefixes come from the
    same 5-core ml-100k sequences as ours (their count is checked against RecBole's instance count).
    """
    from torch.distributions import Binomial
    import torch

    from minibert4rec.data import load_dataset

    data = load_dataset("ml-100k", data_dir=data_dir)
    lengths = torch.tensor([min(k, max_len) for seq in data.sequences for k in range(1, len(seq) - 2)])  # (instances,)
    cap = int(mask_ratio * max_len)
    expected = torch.zeros(len(lengths))  # E[min(Binomial(l, mask_ratio), cap)] for each prefix
    for length in lengths.unique().tolist():
        j = torch.arange(length + 1, dtype=torch.float)  # possible numbers of masked items
        pmf = Binomial(length, torch.tensor(mask_ratio)).log_prob(j).exp()
        expected[lengths == length] = (pmf * j.clamp(max=cap)).sum()
    per_instance = ft_ratio + (1 - ft_ratio) * expected
    return {"instances": len(lengths), "masked_tokens": float(per_instance.sum())}


def summarize(report: dict) -> dict:
    """The ratios a user cares about, from the raw measurements of both sides, seen items removed on both."""
    ours, theirs = report["minibert4rec"], report["recbole"]
    # RecBole's full-sort evaluation removes the user's seen items; so does our full_filtered protocol
    key = "valid_full_filtered_NDCG@10"
    target = max(row[key] for row in theirs["curve"])
    t_ours, t_theirs = first_time_reaching(ours["curve"], target, key), first_time_reaching(theirs["curve"], target, key)
    summary = {
        "protocol": "full ranking, seen items removed, on both sides",
        "recbole_best_valid_NDCG@10": target,
        "seconds_to_reach_it": {"minibert4rec": t_ours, "recbole": t_theirs},
        "time_ratio_recbole_over_ours": (t_theirs / t_ours) if t_ours else None,
        "test_NDCG@10": {"minibert4rec": ours["test_full_filtered"]["NDCG@10"],
                         "recbole": theirs["test_full"]["ndcg@10"]},
        "test_HR@10": {"minibert4rec": ours["test_full_filtered"]["HR@10"], "recbole": theirs["test_full"]["hit@10"]},
        "minibert4rec_test_seen_kept": {"NDCG@10": ours["test_full"]["NDCG@10"], "HR@10": ours["test_full"]["HR@10"]},
        "full_eval_seconds": {"minibert4rec": ours["full_eval_seconds"], "recbole": theirs["full_eval_seconds"]},
        "full_eval_speedup": theirs["full_eval_seconds"] / ours["full_eval_seconds"],
        "sampled_eval_speedup": (theirs["test_sampled"]["seconds"] / ours["sampled_eval_seconds"]
                                 if theirs.get("test_sampled") else None),
        "peak_memory_mb": {"minibert4rec": ours["peak_memory_mb"], "recbole": theirs["peak_memory_mb"]},
    }
    masked = report.get("recbole_masked_tokens_per_epoch")
    throughput = {"minibert4rec": ours["tokens_per_s"]}
    for key in ("recbole", "recbole_stock"):
        run = report.get(key)
        if masked and run and run["curve"]:
            epoch_seconds = run["curve"][-1]["elapsed_seconds"] / run["curve"][-1]["epoch"]  # includes validation
            throughput[key + " (expected, from its masking rule)"] = masked["masked_tokens"] / epoch_seconds
    summary["training_masked_tokens_per_s"] = throughput
    if report.get("recbole_stock") and report["recbole_stock"]["curve"] and theirs["curve"]:
        stock = report["recbole_stock"]["curve"]
        summary["recbole_stock_epoch_seconds_over_fast"] = ((stock[-1]["elapsed_seconds"] / stock[-1]["epoch"])
                                                            / (theirs["curve"][-1]["elapsed_seconds"] / theirs["curve"][-1]["epoch"]))
    return summary


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(report, indent=2, default=float) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128, help="ours")
    parser.add_argument("--recbole-batch-size", type=int, default=2048, help="RecBole's default train_batch_size")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--our-epochs", type=int, default=200, help="schedule length; the budget stops earlier")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--stock", action="store_true", help="also run RecBole with its anomaly detection on")
    parser.add_argument("--make-venv", action="store_true", help="create .venv-recbole first")
    parser.add_argument("--skip-ours", action="store_true", help="debugging: run only RecBole")
    parser.add_argument("--summarize", metavar="JSON", help="recompute the summary of an earlier report; run nothing")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/vs_recbole.json"))
    args = parser.parse_args()
    if args.summarize:
        path = Path(args.summarize)
        report = json.loads(path.read_text())
        report.setdefault("recbole_masked_tokens_per_epoch",
                          recbole_masked_tokens_per_epoch(args.data_dir, report["args"]["max_len"]))
        report["summary"] = summarize(report)
        write_report(report, path)
        print(json.dumps(report["summary"], indent=2))
        return
    if args.make_venv or not (VENV / "bin" / "python").exists():
        make_venv()

    report = {**provenance(), "args": vars(args)}
    report["minibert4rec"] = run_ours(args) if not args.skip_ours else {}
    report["recbole"] = run_recbole(args, anomaly=False)
    if args.stock:
        report["recbole_stock"] = run_recbole(args, anomaly=True)
    if not report["minibert4rec"]:
        print(json.dumps(report["recbole"], indent=2, default=float))
        return
    masked = recbole_masked_tokens_per_epoch(args.data_dir, args.max_len)
    if masked["instances"] != report["recbole"]["train_instances_per_epoch"]:
        masked["warning"] = "prefix count differs from RecBole's instance count: the estimate is approximate"
    report["recbole_masked_tokens_per_epoch"] = masked
    report["summary"] = summarize(report)
    write_report(report, Path(args.out))
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
