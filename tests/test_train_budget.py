"""A time-budgeted run plans its learning-rate decay to end when the budget does."""

import types

import pytest

from minibert4rec import train as train_module
from minibert4rec.data import synthetic_sequences
from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.train import plan_epochs, train

SMALL = dict(hidden_size=16, inner_size=32, n_heads=2, max_seq_length=20, batch_size=64, hidden_dropout_prob=0.0,
             attn_dropout_prob=0.0, learning_rate=1e-2, warmup_steps=5, device="cpu", seed=0, eval_negatives=20,
             eval_every=100)


def test_plan_epochs_by_hand():
    assert plan_epochs(100.0, [10.0], max_epochs=50) == 10  # 90 s left at 10 s per epoch: 9 more
    assert plan_epochs(100.0, [12.0, 8.0], max_epochs=50) == 10  # 80 s left at the median pace, 10 s: 8 more
    assert plan_epochs(100.0, [30.0], max_epochs=50) == 3  # 70 s left at 30 s: 2.33, rounded to 2 more
    assert plan_epochs(100.0, [40.0], max_epochs=50) == 3  # 60 s left at 40 s: 1.5, rounded up: ends at 120 s
    assert plan_epochs(100.0, [1.0], max_epochs=7) == 7  # never more than config.epochs
    assert plan_epochs(5.0, [10.0, 10.0], max_epochs=50) == 2  # never fewer than the epochs already run
    # the pace is the median of the last three epochs: one slow epoch does not move the plan ...
    assert plan_epochs(100.0, [10.0, 10.0, 10.0, 30.0], max_epochs=50) == 8  # 40 s left at 10 s
    # ... a lasting change does
    assert plan_epochs(100.0, [10.0, 10.0, 20.0, 20.0], max_epochs=50) == 6  # 40 s left at 20 s


class FakeClock:
    """``train_epoch`` reads the clock at its start and its end: each epoch then lasts ``seconds``."""

    def __init__(self, seconds: float):
        self.now, self.step = 0.0, seconds

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("budget_s, expected_epochs", [(50.0, 5), (80.0, 8)])
def test_planned_schedule_ends_at_the_budget(monkeypatch, budget_s, expected_epochs):
    data = synthetic_sequences(n_users=200, n_items=60, seed=0)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=FakeClock(10.0).perf_counter))
    config = BERT4RecConfig(**SMALL, epochs=100)
    result = train(config, data, progress=False, time_budget_s=budget_s, plan_schedule=True)
    history = result.history
    assert len(history) == expected_epochs  # 10 s per epoch: exactly the epochs that fit
    assert history["planned_epochs"].iloc[-1] == expected_epochs
    assert history["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)  # the decay ended with the last epoch
    assert history["lr"].iloc[expected_epochs // 2] > 0.2 * config.learning_rate  # and not long before


class SlowingClock:
    """Epochs of 10 s, then of 20 s from the fourth on (another job takes a core, say). ``train_epoch`` reads the
    clock twice per epoch, so epoch k ends at call 2k."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def perf_counter(self) -> float:
        self.calls += 1
        self.now += 10.0 if self.calls <= 6 else 20.0
        return self.now


def test_the_plan_follows_a_pace_that_changes(monkeypatch):
    """Timed on the first epochs only, 10 s each, the plan would run 10 epochs: 170 s for a 100 s budget. Planned
    again after every epoch, the run ends within half an epoch of the budget, and still with the rate at 0."""
    data = synthetic_sequences(n_users=200, n_items=60, seed=0)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=SlowingClock().perf_counter))
    history = train(BERT4RecConfig(**SMALL, epochs=100), data, progress=False, time_budget_s=100.0,
                    plan_schedule=True).history
    assert history["epoch_seconds"].tolist()[:4] == [10.0, 10.0, 10.0, 20.0]  # the clock does what it says
    assert abs(history["elapsed_seconds"].iloc[-1] - 100.0) <= 20.0 / 2
    assert history["planned_epochs"].iloc[3] > history["planned_epochs"].iloc[-1]  # the plan shrank
    assert history["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)


def test_unplanned_budget_cuts_a_long_schedule_while_the_rate_is_high(monkeypatch):
    data = synthetic_sequences(n_users=200, n_items=60, seed=0)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=FakeClock(10.0).perf_counter))
    result = train(BERT4RecConfig(**SMALL, epochs=100), data, progress=False, time_budget_s=50.0)
    assert len(result.history) == 5
    assert result.history["lr"].iloc[-1] > 0.9 * SMALL["learning_rate"]  # what planning avoids


def test_plan_schedule_needs_a_budget():
    data = synthetic_sequences(n_users=50, n_items=30, seed=0)
    with pytest.raises(ValueError, match="time_budget_s"):
        train(BERT4RecConfig(**SMALL, epochs=2), data, progress=False, plan_schedule=True)


def test_a_planned_run_resumes_with_its_plan(monkeypatch, tmp_path):
    data = synthetic_sequences(n_users=200, n_items=60, seed=0)
    config = BERT4RecConfig(**SMALL, epochs=100)
    kwargs = dict(progress=False, time_budget_s=60.0, plan_schedule=True)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=FakeClock(10.0).perf_counter))
    whole = train(config, data, **kwargs)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=FakeClock(10.0).perf_counter))
    train(config, data, out_dir=tmp_path, stop_after_epoch=4, **kwargs)
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=FakeClock(10.0).perf_counter))
    resumed = train(config, data, out_dir=tmp_path, resume_from=tmp_path / "checkpoint.pt", **kwargs)
    assert len(resumed.history) == len(whole.history) == 6
    assert resumed.history["lr"].tolist() == pytest.approx(whole.history["lr"].tolist())
    assert resumed.history["train_loss"].tolist() == pytest.approx(whole.history["train_loss"].tolist())


@pytest.mark.integration
def test_the_command_line_refuses_a_budget_that_is_not_positive(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "minibert4rec", "train", "--dataset", "ml-100k", "--budget-minutes",
                           "0", "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--budget-minutes" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("cores, load, expected", [(2, 1.0, 2), (2, 1.6, 1), (2, 0.1, 2), (8, 3.0, 4), (8, 7.8, 4),
                                                   (1, 1.0, 1)])
def test_notebook_threads_every_core_only_on_an_idle_machine(monkeypatch, cores, load, expected):
    from minibert4rec.support import runtime

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    monkeypatch.setattr(runtime, "busy_cores_of_others", lambda: None)  # where /proc/stat is missing
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    threads, why = runtime.notebook_threads()
    assert threads == expected
    assert ("idle" in why) == (load <= cores - 0.5)


@pytest.mark.parametrize("cores, others, expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.9, 1), (8, 0.2, 4), (8, 3.0, 4)])
def test_notebook_threads_reads_what_other_processes_use_now(monkeypatch, cores, others, expected):
    from minibert4rec.support import runtime

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    monkeypatch.setattr(runtime, "busy_cores_of_others", lambda: others)
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))  # a stale load average no longer decides
    threads, why = runtime.notebook_threads()
    assert threads == expected
    assert ("idle" in why) == (others <= 0.5) and f"{others:.2f} cores" in why


@pytest.mark.integration
def test_busy_cores_of_others_sees_another_process_and_not_its_own_work():
    import os
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from minibert4rec.support import runtime

    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat on this platform")
    stop = threading.Event()

    def spin() -> None:  # this process's own work must not count
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        quiet = runtime.busy_cores_of_others(window_s=0.5)
    finally:
        stop.set()
        spinner.join()
    assert quiet is not None
    if (os.cpu_count() or 1) - quiet < 1.2:
        pytest.skip(f"other processes already use {quiet:.2f} cores: no free core to see one more busy process")
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.5)  # let it start
        loud = runtime.busy_cores_of_others(window_s=1.0)
    finally:
        busy.kill()
        busy.wait()
    assert loud is not None
    assert loud - quiet >= 0.5  # one more busy process: about one more core (and the spinner was not counted)
