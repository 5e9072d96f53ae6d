"""The command line for real use: resume after a crash, never overwrite a run silently, plain help texts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from minibert4rec.apps import cli
from minibert4rec.data import synthetic_sequences
from minibert4rec.support.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 6


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    """A tiny 'user item' dataset and the train options of a run that takes about a second."""
    tmp = tmp_path_factory.mktemp("cli")
    data = synthetic_sequences(n_users=150, n_items=120, seed=0, p_follow=0.9)
    path = tmp / "seq.txt"
    path.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(data.sequences) for i in seq))
    (tmp / "cfg.json").write_text('{"eval_negatives": 20}')
    return ["--dataset", str(path), "--data-dir", str(tmp), "--config", str(tmp / "cfg.json"), "--epochs",
            str(EPOCHS), "--device", "cpu", "--threads", "1", "--max-seq-length", "10", "--hidden-size", "16",
            "--inner-size", "32", "--batch-size", "32", "--eval-every", "3", "--quiet"]


def _results(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics[k] for k in ("valid", "test", "best_epoch")}


@pytest.mark.integration
def test_resume_after_kill_9_gives_the_uninterrupted_runs_metrics(tmp_path, run_args, capsys):
    crashed = tmp_path / "crashed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "minibert4rec", "train", *run_args, "--out", str(crashed)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (crashed / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)  # kill -9 right after the first checkpoint: no clean-up of any kind
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    state = load_checkpoint(crashed / "checkpoint.pt")
    stopped_at = state["epoch"]
    assert 1 <= stopped_at < EPOCHS and not (crashed / "metrics.json").exists()

    # without --resume the unfinished run is not started over
    assert cli.main(["train", *run_args, "--out", str(crashed)]) == 2
    assert "unfinished run (epoch" in capsys.readouterr().err
    # --resume keeps the run's config: another value is refused, --threads may differ
    assert cli.main(["train", *run_args, "--out", str(crashed), "--resume", "--epochs", "99"]) == 2
    assert "epochs=99 (the run has 6)" in capsys.readouterr().err
    assert cli.main(["train", *run_args, "--out", str(crashed), "--resume"]) == 0
    assert f"resuming {crashed} after epoch {stopped_at} of {EPOCHS}" in capsys.readouterr().out

    uninterrupted = tmp_path / "uninterrupted"
    assert cli.main(["train", *run_args, "--out", str(uninterrupted)]) == 0
    assert _results(crashed) == _results(uninterrupted)  # the same metrics, to the last digit
    history = pd.read_csv(crashed / "history.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    # the epochs before the crash were not trained again: their timings are the crashed process's
    assert history["epoch_seconds"].tolist()[:stopped_at] == [row["epoch_seconds"] for row in state["history"]]


def test_train_refuses_to_overwrite_a_finished_run(tmp_path, run_args, capsys):
    out = tmp_path / "run"
    args = [*run_args[: run_args.index("--epochs")], "--epochs", "1", *run_args[run_args.index("--epochs") + 2:]]
    assert cli.main(["train", *args, "--out", str(out)]) == 0
    finished = (out / "metrics.json").read_text()
    capsys.readouterr()
    assert cli.main(["train", *args, "--out", str(out), "--seed", "1"]) == 2
    refused = capsys.readouterr().err
    assert "already holds a finished run" in refused and "--overwrite" in refused
    assert (out / "metrics.json").read_text() == finished  # untouched
    assert cli.main(["train", *args, "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text()) != json.loads(finished)
    # a run folder given as --checkpoint is read; a folder without a checkpoint names the file it expected
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out)]) == 0
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    assert f"holds no checkpoint.pt; give the file that train --out {tmp_path} writes, " \
           f"{tmp_path / 'checkpoint.pt'}" in capsys.readouterr().err


def test_help_is_plain_text_with_defaults():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in {"": parser, **subparsers}.items():
        text = sub.format_help()
        assert "``" not in text and ":func:" not in text, name
    train = subparsers["train"].format_help()
    for shown in ("--epochs N            passes over the training windows (default: 50)", "(default: ml-100k",
                  "--resume", "--overwrite", "--threads N"):
        assert shown in train, shown
    download = subparsers["download"].format_help()
    assert "--min-user-count" not in download and "--config" not in download
    assert "{ml-100k,ml-1m,ml-20m}" in download  # only what has a download


def test_popularity_command_is_the_baseline_of_a_run(tmp_path, run_args, capsys):
    from minibert4rec.support.checkpoint import checkpoint_data
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.evaluate import evaluate_popularity, metrics_table

    out = tmp_path / "run"
    args = [*run_args[: run_args.index("--epochs")], "--epochs", "1", *run_args[run_args.index("--epochs") + 2:]]
    assert cli.main(["train", *args, "--seed", "7", "--out", str(out)]) == 0
    capsys.readouterr()
    # with --checkpoint: the run's data and config (seed 7, 20 negatives), the same table as evaluate prints
    assert cli.main(["popularity", "--checkpoint", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "popularity baseline on seq: seed 7, 20 sampled negatives counted on the whole sequences" in printed
    state = load_checkpoint(out / "checkpoint.pt")
    expected = evaluate_popularity(checkpoint_data(state), config=BERT4RecConfig.from_dict(state["config"]))
    table = metrics_table({"test": expected}, n_negatives=20).to_string(float_format=lambda v: f"{v:.4f}")
    assert table in printed and "sampled (20 neg.)" in printed  # labelled with the run's negatives, not the paper's
    # without a checkpoint: a dataset and the options the negatives depend on
    data_args = run_args[: run_args.index("--config")]
    assert cli.main(["popularity", *data_args, "--seed", "7", "--eval-negatives", "20", "--split", "valid", "test"]) == 0
    printed = capsys.readouterr().out
    rows = {" ".join(line.split()[:-6]): line.split()[-6:] for line in printed.splitlines()[2:]}
    assert rows["test / sampled (20 neg.)"] == table.splitlines()[-1].split()[-6:]  # the same numbers
    assert set(rows) == {f"{split} / {p}" for split in ("valid", "test")
                         for p in ("full, seen kept", "full, seen removed", "sampled (20 neg.)")}
    assert cli.main(["popularity", *data_args, "--eval-negatives", "20", "--popularity-counts", "whole"]) == 0
    assert "counted on the whole sequences" in capsys.readouterr().out
    assert cli.main(["popularity", "--checkpoint", str(out), "--seed", "1"]) == 2
    assert "with the run's own data and config; drop --seed" in capsys.readouterr().err
    assert cli.main(["popularity", *data_args, "--popularity-counts", "all"]) == 2
    assert "popularity_counts" in capsys.readouterr().err


def test_dataset_preset_is_applied_printed_and_overridden(capsys):
    """--dataset ml-1m applies the paper's settings and says so; an explicit option wins and says so too;
    ml-100k (no preset) prints nothing and keeps the package's defaults."""
    from minibert4rec.apps.cli import _config_from_args, build_parser

    parser = build_parser()
    config = _config_from_args(parser.parse_args(["train", "--dataset", "ml-1m", "--mask-ratio", "0.3"]))
    out = capsys.readouterr().out
    assert config.max_seq_length == 200 and config.mask_ratio == 0.3 and config.window_step == 100
    assert "preset ml-1m:" in out and "max_seq_length=200" in out
    assert "--mask-ratio 0.3 overrides the preset's 0.2" in out
    config = _config_from_args(parser.parse_args(["train", "--dataset", "ml-100k"]))
    assert config.max_seq_length == 50 and capsys.readouterr().out == ""
    args = parser.parse_args(["train", "--dataset", "some/file.txt", "--preset", "beauty", "--min-item-count", "2"])
    config = _config_from_args(args)
    assert (config.max_seq_length, config.mask_ratio) == (50, 0.6)
    from minibert4rec.apps.cli import _fill_data_args

    _fill_data_args(args)
    assert (args.min_user_count, args.min_item_count) == (0, 2)  # the preset's k-core (none), under the user's
    with pytest.raises(ValueError, match="unknown preset"):
        _config_from_args(parser.parse_args(["train", "--dataset", "x.txt", "--preset", "netflix"]))


def test_amp_cpu_flag_sets_the_option_and_counts_as_given():
    """``--amp-cpu`` (train and tune) sets ``amp_cpu``; without it the run keeps float32, the paper's arithmetic."""
    from minibert4rec.apps.cli import _config_from_args, _given_options, build_parser

    parser = build_parser()
    for command in ("train", "tune"):
        extra = ["--params-file", "x.test"] if command == "tune" else []
        args = parser.parse_args([command, "--dataset", "ml-100k", "--amp-cpu", *extra])
        assert _config_from_args(args).amp_cpu and _given_options(args)["amp_cpu"] is True
        args = parser.parse_args([command, "--dataset", "ml-100k", *extra])
        assert not _config_from_args(args).amp_cpu and "amp_cpu" not in _given_options(args)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "data" / "ml-100k").is_dir(),
                    reason="needs the repository's data/ml-100k")
@pytest.mark.integration
def test_readme_commands_work_from_an_empty_folder(tmp_path):
    """The documented defaults (--dataset ml-100k, --data-dir data relative to the working folder) from any folder."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ml-100k").symlink_to(root / "data" / "ml-100k")
    env = {**os.environ, "PYTHONPATH": str(root)}
    for argv in (["stats"], ["stats", "--dataset", "ml-100k"], ["download", "--dataset", "ml-100k"]):
        done = subprocess.run([sys.executable, "-m", "minibert4rec", *argv], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr[-500:])
        assert "ml-100k" in done.stdout, (argv, done.stdout)


def test_popularity_help_shows_the_default_runs_use(capsys):
    with pytest.raises(SystemExit):
        cli.main(["popularity", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "whole sequences or train (default: whole)" in text


def test_a_huge_number_on_the_command_line_is_one_short_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--seed", "1" * 5001])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and len(err[0]) < 1100 and "--seed" in err[0]
