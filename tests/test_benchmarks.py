"""The reproduction benchmark end to end on a tiny dataset: what it writes, and that the paper's numbers are
stored as the paper's, never as ours."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minibert4rec.data import synthetic_sequences

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("protocol, watched, extra", [
    ("paper", "test", []),
    ("held-out", "valid", ["--loss-negatives", "50", "--masking", "independent", "--position-counting", "right"])])
@pytest.mark.integration
def test_reproduce_writes_both_protocols_and_keeps_the_papers_row_apart(tmp_path, protocol, watched, extra):
    data = synthetic_sequences(n_users=400, n_items=200, min_len=8, max_len=20, seed=3)  # >= 100 negatives each
    seqs = tmp_path / "seq.txt"
    seqs.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(data.sequences) for i in seq))
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, "benchmarks/reproduce.py", "--dataset", str(seqs), "--data-dir", str(tmp_path),
                    "--preset", "ml-1m", "--epochs", "2", "--eval-every", "1", "--protocol", protocol,
                    "--threads", "1", "--out", str(out),
                    "--checkpoint-dir", str(tmp_path / "ck"), *extra], cwd=ROOT, check=True, capture_output=True,
                   text=True)
    result = json.loads(out.read_text())
    # the Cloze rules and the loss: the config's defaults (the authors', full softmax) unless given
    expected = ({"loss_negatives": 50, "masking": "independent", "position_counting": "right"} if extra else
                {"loss_negatives": 0, "masking": "fixed", "position_counting": "left"})
    assert {k: result["config"][k] for k in expected} == expected
    assert result["preset"] == "ml-1m" and result["config"]["max_seq_length"] == 200
    assert result["status"] == "done" and result["protocol"] == protocol and result["epochs_run"] == 2
    assert result["config"]["include_valid_in_train"] == (protocol == "paper")
    assert [f"{watched}_sampled_NDCG@10" in row for row in result["curve"]] == [True, True]
    assert set(result["test"]) == {"full", "full_filtered", "sampled"}
    metrics = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")
    assert set(metrics) <= set(result["test"]["sampled"])
    # a 2-epoch model on synthetic data is nowhere near the paper: its row must not have leaked into ours
    assert all(result["test"]["sampled"][m] != result["paper"][m] for m in metrics)
    assert result[f"{watched}_reaches_paper_at_seconds"] is None
    assert {"git_commit", "command", "machine", "train_seconds"} <= set(result)
    assert (tmp_path / "ck" / "checkpoint.pt").exists() and not list(tmp_path.glob("*.tmp"))


sys.path.insert(0, str(ROOT / "benchmarks"))
import reproduce  # noqa: E402


def test_reproduce_ml1m_default_is_still_the_recipe():
    args = reproduce.parse_args([])
    options, lines = reproduce.settings(args, reproduce.preset_for(args.dataset, args.preset))
    recipe = {"min_user_count": 5, "min_item_count": 5, "max_seq_length": 200, "mask_ratio": 0.2, "window_step": None,
              "hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.1,
              "attn_dropout_prob": 0.1, "batch_size": 32, "learning_rate": 2e-3, "warmup_steps": 500,
              "weight_decay": 0.0, "last_item_ratio": 0.1, "epochs": 105, "output_bias_init": "popularity"}
    assert options == recipe  # what reproduce.py hard-coded before the presets
    assert args.seed == 42 and args.eval_every == 2 and args.protocol == "paper"
    assert lines[0].startswith("preset ml-1m (with the CPU recipe): min_user_count=5")
    for key in ("position_counting", "masking", "max_predictions"):  # the config's defaults (the authors'), not the preset's
        assert key not in options
        assert key in reproduce.CONFIG_FIELDS or f"{key}=" in lines[-1]


def test_reproduce_options_override_the_preset_and_say_so():
    args = reproduce.parse_args(["--dataset", "beauty", "--mask-ratio", "0.4", "--dropout", "0.3",
                                 "--min-item-count", "5"])
    options, lines = reproduce.settings(args, reproduce.preset_for(args.dataset, args.preset))
    assert options["mask_ratio"] == 0.4 and options["max_seq_length"] == 50 and options["window_step"] == 5
    assert options["hidden_dropout_prob"] == options["attn_dropout_prob"] == 0.3 and options["min_user_count"] == 0
    assert "--mask-ratio 0.4 overrides the preset's 0.6" in lines
    assert "--dropout 0.3 overrides the preset's 0.1" in lines and "--min-item-count 5 overrides the preset's 0" in lines
    # Beauty's recipe keeps the paper's zero output bias (the log-popularity start hurt there) over 16 epochs
    assert options["output_bias_init"] == "zeros" and options["epochs"] == 16 and options["batch_size"] == 64


def test_reproduce_missing_file_says_where_to_put_it(tmp_path, capsys):
    assert reproduce.main(["--dataset", "steam", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r.json")]) == 2
    message = capsys.readouterr().err
    assert str(tmp_path / "steam" / "steam.txt") in message and "--path FILE" in message
    assert not (tmp_path / "r.json").exists()


def test_reproduce_table_is_the_same_shape_with_or_without_a_paper_row():
    test = {p: {m: 0.1 for m in reproduce.METRICS} for p in ("sampled", "full", "full_filtered")}
    with_row = reproduce.table("beauty", reproduce.PRESETS["beauty"].paper_row, test).splitlines()
    without = reproduce.table("mine", {}, test).splitlines()
    assert with_row[1] == without[1] and len(without) == len(with_row) + 1  # + the line that says why no row
    assert "0.3025" in with_row[4] and without[4].split()[1] == "-"


@pytest.mark.integration
def test_pipeline_scale_runs_at_a_tiny_size_and_reports_every_stage(tmp_path):
    out = tmp_path / "scale.json"
    started = time.perf_counter()
    subprocess.run([sys.executable, "benchmarks/pipeline_scale.py", "--users", "60", "--items", "80", "--actions",
                    "3000", "--max-len", "20", "--batch-size", "32", "--max-batches", "2", "--eval-users", "10",
                    "--eval-negatives", "10", "--hidden-size", "8", "--threads", "1", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    result = json.loads(out.read_text())
    stages = result["stages"]
    assert list(stages) == ["load", "preprocess", "split", "item_counts", "batches", "evaluate"]
    # the stages are timed inside the run, one after the other: together no longer than the whole subprocess
    assert sum(s["seconds"] for s in stages.values()) <= wall + 0.05 * len(stages)  # + each stage's rounding
    assert all(s["peak_rss_mb"] > 50 for s in stages.values())  # a Python process with torch and pandas loaded
    assert stages["load"]["rows"] == 3000 == result["generated"]["actions"]  # every generated line was read
    assert stages["preprocess"]["actions"] <= 3000 and stages["preprocess"]["users"] <= 60
    batches = stages["batches"]
    assert batches["batches_iterated"] == 2 < batches["batches_per_epoch"] and "extrapolated" in batches["how"]
    assert stages["evaluate"]["users"] == 10
    assert result["load_preprocess_split_seconds"] == pytest.approx(
        sum(stages[s]["seconds"] for s in ("load", "preprocess", "split")), abs=0.1)
    # a few thousand actions are far inside both targets, and the verdicts are those of the reported numbers
    assert result["meets_targets"] == {"peak_rss": True, "load_preprocess_split": True}
    assert result["peak_rss_gb"] == pytest.approx(max(s["peak_rss_mb"] for s in stages.values()) / 1024, abs=0.01)


def test_ddp_scaling_reports_the_first_time_each_level_is_reached():
    import ddp_scaling

    history = [{"elapsed_seconds": 10.04, "valid_full_NDCG@10": 0.018}, {"elapsed_seconds": 20.0},  # not evaluated
               {"elapsed_seconds": 30.0, "valid_full_NDCG@10": 0.031},
               {"elapsed_seconds": 40.0, "valid_full_NDCG@10": 0.024}]
    reached = ddp_scaling.seconds_to_levels(history, levels=(0.015, 0.02, 0.03, 0.04))
    assert reached == {"0.015": 10.0, "0.02": 30.0, "0.03": 30.0, "0.04": None}  # the first crossing, not the last


def test_thread_affinity_layouts_and_summary():
    import thread_affinity as ta

    names = [layout.name for layout in ta.layouts(cores=2)]
    assert names == ["one process, 1 thread, unpinned", "one process, 1 thread, OMP bound",
                     "one process, 2 threads, unpinned", "one process, 2 threads, OMP bound",
                     "two 1-thread processes, unpinned", "two 1-thread processes, one core each",
                     "two 1-thread processes, both OMP bound"]
    by_name = {layout.name: layout for layout in ta.layouts(cores=2)}
    assert [p.cores for p in by_name["two 1-thread processes, one core each"].processes] == [{0}, {1}]  # own cores
    assert all(p.env == ta.OMP_BOUND and p.cores is None  # the trap: bound, but nothing keeps them apart
               for p in by_name["two 1-thread processes, both OMP bound"].processes)
    assert [layout.name for layout in ta.layouts(cores=1)] == names[:2]  # a 1-core machine: no 2-thread layouts
    # two rounds of a two-process layout: per-process times pooled, throughput summed within a round
    rounds = [[{"ms_per_sequence": 10.0}, {"ms_per_sequence": 20.0}], [{"ms_per_sequence": 5.0},
                                                                         {"ms_per_sequence": 5.0}]]
    row = ta.summarize(by_name["two 1-thread processes, unpinned"], rounds)
    assert row["ms_per_sequence_min_median_max"] == [5.0, 7.5, 20.0]
    assert row["machine_sequences_per_s_min_median_max"] == [150.0, 275.0, 400.0]  # 100 + 50, and 200 + 200
    assert row["rounds"] == 2 and [p["cores"] for p in row["processes"]] == ["any", "any"]


def test_notebook05_runs_reads_the_committed_full_run_and_refuses_a_smoke_run():
    import notebook05_runs

    notebook = json.loads((ROOT / notebook05_runs.NOTEBOOK).read_text())
    run = notebook05_runs.one_run(notebook05_runs.output_text(notebook))  # the notebook is committed after a full run
    assert run["epochs"] > 10 and 0 < run["training_minutes"] <= run["minutes_with_evaluations"]
    if run["machine"].startswith("a CPU"):  # the threads it trained with, and what it read to choose them
        assert run["training_threads"] >= 1
        assert (run["load_when_threads_chosen"], run["other_processes_cores_when_threads_chosen"]) != (None, None)
    test = run["test_all_users"]
    for protocol in ("sampled", "full_seen_removed", "full_seen_kept"):
        assert 0 < test[protocol]["NDCG@10"] < test[protocol]["HR@10"] < 1  # NDCG@10 <= HR@10 for one target
    assert test["full_seen_kept"]["NDCG@10"] <= test["full_seen_removed"]["NDCG@10"] < test["sampled"]["NDCG@10"]
    with pytest.raises(ValueError, match="not on ml-1m"):
        notebook05_runs.one_run("dataset ml-100k: 943 users, 1,349 items\n3 epochs in 0.1 minutes of training")


def test_plateau_pins_side_by_side_runs_to_distinct_cores():
    import os

    import plateau

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    allowed = sorted(os.sched_getaffinity(0))
    assert plateau.free_core([], threads=1) == allowed[0]
    assert plateau.free_core([None], threads=2) is None  # a multi-thread run goes alone and unpinned
    if len(allowed) > 1:
        assert plateau.free_core([allowed[0]], threads=1) == allowed[1]
    with pytest.raises(SystemExit, match="lower --parallel"):
        plateau.free_core(allowed, threads=1)


def test_plateau_summary_lists_line_up_with_the_seeds_whatever_order_runs_finished():
    import plateau

    def run(seed: int, threads: int, ndcg: float) -> dict:
        metrics = {"HR@10": 2 * ndcg, "NDCG@10": ndcg}
        return {"config": {"seed": seed, "threads": threads}, "test_leaves_plateau_at_seconds": 60.0 * (seed + 1),
                "test_reaches_paper_at_seconds": None, "test": {p: metrics for p in ("sampled", "full", "full_filtered")},
                "train_seconds": 600.0, "epochs_run": 10 + seed, "device": "cpu", "cpu_seconds": 660.0,
                "curve": [{"epoch_seconds": 30.0 + seed}]}

    finished = [run(2, 1, 0.3), run(0, 1, 0.1), run(1, 2, 0.5), run(1, 1, 0.2)]  # the order parallel runs ended in
    rows = plateau.summary_rows(finished, [1, 2])
    one = rows[0]
    assert one["seeds"] == [0, 1, 2] and one["epochs_run"] == [10, 11, 12]
    assert one["final_test_full_filtered_NDCG@10"] == [0.1, 0.2, 0.3]
    assert one["leave_plateau_minutes"] == {"min": 1.0, "median": 2.0, "max": 3.0, "reached": 3, "runs": 3}
    assert one["paper_row_minutes"]["reached"] == 0 and one["seconds_per_epoch"] == 31.0
    assert rows[1]["seeds"] == [1] and rows[1]["final_test_sampled_NDCG@10"] == [0.5]


def test_machine_records_a_pinned_process():
    import os

    from common import machine

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to pin to one")
    before = os.sched_getaffinity(0)
    assert "pinned_to_cores" not in machine() or len(before) < (os.cpu_count() or 0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        assert machine()["pinned_to_cores"] == str(core)
    finally:
        os.sched_setaffinity(0, before)


def _tiny_notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.integration
def test_run_notebooks_executes_in_place_records_each_row_and_keeps_the_others(tmp_path):
    import os

    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    _tiny_notebook(folder / "01_ok.ipynb", "print(6 * 7)")
    _tiny_notebook(folder / "02_fails.ipynb", "raise ValueError('broken on purpose')")
    out = tmp_path / "runs.json"
    out.write_text(json.dumps({"command": "python benchmarks/run_notebooks.py 00", "git_commit": {"05-08": "abc1234"},
                               "date": "2026-01-01",
                               "rows": [{"notebook": "00_old.ipynb", "wall_s": 1.0}]}))
    env = {k: v for k, v in os.environ.items() if k != "MINIBERT4REC_SMOKE"}
    script = [sys.executable, "benchmarks/run_notebooks.py", "--notebooks-dir", str(folder), "--out", str(out),
              "--allow-uncommitted"]
    done = subprocess.run([*script, "01", "02"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "02_fails.ipynb failed" in done.stderr
    rows = {row["notebook"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["00_old.ipynb", "01_ok.ipynb", "02_fails.ipynb"]
    assert rows["00_old.ipynb"]["git_commit"] == "abc1234"  # the older layout's shared commit moves into its row
    assert rows["00_old.ipynb"]["command"] == "python benchmarks/run_notebooks.py 00"  # and so does its command
    assert rows["01_ok.ipynb"]["command"].endswith("run_notebooks.py --notebooks-dir " + f"{folder} --out {out} "
                                                   "--allow-uncommitted 01 02")
    assert rows["01_ok.ipynb"]["exit_code"] == 0 and rows["02_fails.ipynb"]["exit_code"] != 0
    assert rows["01_ok.ipynb"]["wall_s"] > 0 and rows["01_ok.ipynb"]["user_cpu_s"] > 0
    outputs = nbformat.read(folder / "01_ok.ipynb", as_version=4).cells[0].outputs
    assert outputs and outputs[0]["text"].strip() == "42"  # executed in place
    smoke = subprocess.run([*script, "01"], cwd=ROOT, env={**env, "MINIBERT4REC_SMOKE": "1"}, capture_output=True,
                           text=True, timeout=60)
    assert smoke.returncode != 0 and "MINIBERT4REC_SMOKE is set" in smoke.stderr
    unknown = subprocess.run([*script, "9"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0 and "01_ok.ipynb, 02_fails.ipynb" in unknown.stderr


def test_epoch_time_summary_and_the_from_scratch_path_is_restored(monkeypatch):
    """epoch_time.py: min / median / max over seeds, and timing the from-scratch path leaves the trainer's
    attention switched back on, even when the epoch fails."""
    import epoch_time
    from minibert4rec.fast import attention as fast_attention

    runs = [{"path": "default", "threads": 2, "seed": s, "epoch_seconds": t, "cpu_seconds": 2 * t} for s, t in
            [(0, 30.0), (1, 27.5), (2, 28.0)]]
    row = epoch_time.summarize(runs)
    assert row["seeds"] == [0, 1, 2] and row["epoch_seconds_min_median_max"] == [27.5, 28.0, 30.0]
    assert row["cpu_seconds_min_median_max"] == [55.0, 56.0, 60.0]

    def failing_epoch(*args, **kwargs):
        assert fast_attention.can_use(None, None) is False  # the from-scratch path is on during the epoch
        raise RuntimeError("epoch failed")

    monkeypatch.setattr(epoch_time, "train_epoch", failing_epoch)
    data = synthetic_sequences(n_users=20, n_items=30, min_len=5, max_len=12, seed=0)
    from minibert4rec.support.config import BERT4RecConfig
    with pytest.raises(RuntimeError, match="epoch failed"):
        epoch_time.one_epoch("from-scratch", 1, 0, data, BERT4RecConfig(max_seq_length=8, hidden_size=8, n_heads=2))
    assert fast_attention.can_use(torch.zeros(1, 1, 2, 4), None)  # switched back on after the failed epoch


@pytest.mark.parametrize("path, bf16, attn_dropout", [
    ("bf16, no attention dropout", True, 0.0), ("bf16 autocast", True, 0.1), ("float32", False, 0.1)])
def test_epoch_time_arms_train_what_their_names_say(monkeypatch, path, bf16, attn_dropout):
    """epoch_time.py --compare attention-dropout: its first arm trains in bf16 without attention dropout, the
    second in bf16 with the paper's 0.1; float32 keeps both its precision and its dropout."""
    import epoch_time
    from minibert4rec.support.config import BERT4RecConfig

    seen = {}

    def fake_epoch(model, loss_fn, dataset, optimizer, scheduler, config, epoch, **kwargs):
        seen.update(bf16=kwargs["bf16"], config_p=config.attn_dropout_prob,
                    layer_p=[block.attention.attn_dropout_prob for block in model.blocks])
        return {"epoch_seconds": 1.0, "train_loss": 5.0}

    monkeypatch.setattr(epoch_time, "train_epoch", fake_epoch)
    data = synthetic_sequences(n_users=20, n_items=30, min_len=5, max_len=12, seed=0)
    run = epoch_time.one_epoch(path, 1, 0, data, BERT4RecConfig(max_seq_length=8, hidden_size=8, n_heads=2,
                                                               attn_dropout_prob=0.1))
    assert seen == {"bf16": bf16, "config_p": attn_dropout, "layer_p": [attn_dropout, attn_dropout]}
    assert run["attn_dropout_prob"] == attn_dropout and run["path"] == path
    assert epoch_time.ARMS["attention-dropout"] == ("bf16, no attention dropout", "bf16 autocast")


def test_epoch_time_loss_and_optimizer_arms(monkeypatch):
    """epoch_time.py --compare loss-and-optimizer: the trainer's arm trains with fused AdamW and the sliced loss under
    autocast; the other with AdamW's per-tensor loop and autograd's loss, and the sliced loss is back afterwards."""
    import epoch_time
    from minibert4rec.fast import cross_entropy as fast_ce
    from minibert4rec.support.config import BERT4RecConfig

    seen = []

    def fake_epoch(model, loss_fn, dataset, optimizer, scheduler, config, epoch, **kwargs):
        seen.append((kwargs["bf16"], bool(optimizer.defaults["fused"]), fast_ce.used_under_cpu_autocast(),
                     [len(g["params"]) for g in optimizer.param_groups]))
        return {"epoch_seconds": 1.0, "train_loss": 5.0}

    monkeypatch.setattr(epoch_time, "train_epoch", fake_epoch)
    data = synthetic_sequences(n_users=20, n_items=30, min_len=5, max_len=12, seed=0)
    config = BERT4RecConfig(max_seq_length=8, hidden_size=8, n_heads=2)
    new, old = epoch_time.ARMS["loss-and-optimizer"]
    epoch_time.one_epoch(new, 1, 0, data, config)
    epoch_time.one_epoch(old, 1, 0, data, config)
    assert seen[0][:3] == (True, True, True) and seen[1][:3] == (True, False, False)
    assert seen[0][3] == seen[1][3]  # the same parameter groups (decay on matrices only)
    assert fast_ce.used_under_cpu_autocast()


def test_profile_step_bf16_parts_and_op_shares():
    """profile_step.py --amp-cpu on a small model and data: the parts and the operator shares each sum to 1, and
    the matrix products are a real share of the step."""
    import profile_step
    from minibert4rec.support.config import BERT4RecConfig

    data = synthetic_sequences(n_users=40, n_items=30, min_len=5, max_len=12, seed=0)
    config = BERT4RecConfig(max_seq_length=8, hidden_size=8, inner_size=16, n_heads=2, hidden_dropout_prob=0.1,
                            attn_dropout_prob=0.1, amp_cpu=True)
    threads = torch.get_num_threads()
    try:
        row = profile_step.profile_bf16(1, 3, 8, data, config)
    finally:
        torch.set_num_threads(threads)
    assert row["arithmetic"] == "bf16 autocast" and row["steps"] == 3
    assert abs(sum(row["share"].values()) - 1) < 0.01
    assert abs(sum(row["op_shares"].values()) - 1) < 0.01
    assert row["op_shares"]["matrix products"] > 0.01 and row["gflop_per_step"] >= 0
