"""Every notebook runs offline on ml-100k at its normal size (MINIBERT4REC_DATASET=ml-100k, no smoke switch).

Each notebook is copied into a fresh folder (``tmp/notebooks/``, with ``tmp/data`` pointing at the repository's
``data/``), so that its ``../runs`` is the test's own, and executed in a new kernel whose environment names ml-100k,
has no MINIBERT4REC_SMOKE and routes every HTTP(S) request and pip to a closed port (no network). 01-04 run by
default; 05-08 train for minutes, so they run with ``pytest --run-slow`` (README: "Offline, on ml-100k").

Two situations a reader meets are simulated as well: ML-1m asked for but neither in data/ nor downloadable
(``notebook_data`` switches to ml-100k with a one-line notice; tested directly, with ``download`` replaced), and a
fresh runtime without notebook 05's checkpoint (06 and 07, at smoke size, train their own smaller model).
"""

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, every connection is refused at once


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MINIBERT4REC_SMOKE", "no_proxy", "NO_PROXY")}
    env |= {"MINIBERT4REC_DATASET": "ml-100k", "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
            "http_proxy": CLOSED, "https_proxy": CLOSED, "HTTP_PROXY": CLOSED, "HTTPS_PROXY": CLOSED,
            "PIP_NO_INDEX": "1", "PIP_INDEX_URL": CLOSED + "/simple", "PIP_FIND_LINKS": "", "MPLBACKEND": "agg"}
    return env | extra


def execute(notebook: Path, folder: Path, env: dict[str, str], timeout: int = 1800) -> nbformat.NotebookNode:
    """Run ``notebook`` from ``folder/notebooks/`` in a fresh kernel; raise on the first failing cell."""
    from nbclient import NotebookClient

    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder / "notebooks")}})
    client.execute(env=env)
    return nb


def stderr_of(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("name") == "stderr")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    if not any((ROOT / "data" / "ml-100k" / f).is_file() for f in ("u.data", "ml-100k.inter")):
        pytest.skip("ml-100k is not in data/: python -m minibert4rec download --dataset ml-100k")
    folder = tmp_path_factory.mktemp("offline")
    (folder / "data").symlink_to(ROOT / "data", target_is_directory=True)
    return folder


def _check(number: str, folder: Path) -> None:
    nb = execute(NOTEBOOKS[number], folder, offline_env())
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert "Warning" not in stderr_of(nb), stderr_of(nb)[-2000:]  # no TqdmWarning, UserWarning, ...


@pytest.mark.parametrize("number", ["01", "02", "03", "04"])
@pytest.mark.integration
def test_notebook_runs_offline_on_ml100k(number, folder):
    _check(number, folder)


@pytest.mark.slow
@pytest.mark.parametrize("number", ["05", "06", "07", "08"])  # in this order: 06 and 07 read the checkpoint of 05
@pytest.mark.integration
def test_training_notebook_runs_offline_on_ml100k(number, folder):
    _check(number, folder)


@pytest.mark.integration
def test_a_missing_dataset_stops_the_data_cell_with_a_short_message(tmp_path):
    """ML-1m asked for, neither it nor ml-100k in data/, no network: the data cell says in one line that it switches
    to ml-100k, then what to do in two lines, no stack trace; tqdm stays silent although ipywidgets is missing (a
    stub package that fails to import stands in for it)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks").mkdir()
    stub = tmp_path / "no_ipywidgets" / "ipywidgets"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('ipywidgets is not installed (test stub)')\n")
    env = offline_env(MINIBERT4REC_DATASET="ml-1m")
    env["PYTHONPATH"] = os.pathsep.join([str(stub.parent), env["PYTHONPATH"]])
    nb = nbformat.read(NOTEBOOKS["01"], as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path / "notebooks")}})
    with pytest.raises(CellExecutionError) as failure:
        client.execute(env=env)  # fills nb's outputs up to the failing cell
    report = str(failure.value)  # nbclient: the cell's source, its stderr, then the error as the kernel showed it
    assert "notebook_data(SIZES" in report  # the data cell, not an earlier one
    cell = next(c for c in nb.cells if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs))
    printed = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").strip().splitlines()
    assert len(printed) == 1 and "ml-1m is not in ../data" in printed[0] and "uses ml-100k instead" in printed[0]
    shown = report.split("------------------")[-1].strip().splitlines()
    assert shown[0].startswith("DatasetUnavailable: ml-100k is not in ../data/ml-100k and could not be downloaded")
    assert "put it at ../data/ml-100k.zip" in shown[1]
    assert len(shown) <= 3 and not any(line.startswith(("Traceback", "  File", "Cell In")) for line in shown)
    assert "Warning" not in report + stderr_of(nb)  # the tqdm fallback without ipywidgets is silent


# ------------------------------------------------------------------------------------- ML-1m missing, no network
def _fake_download(missing: set[str]):
    """``download`` as without a network: the datasets in ``missing`` cannot be fetched; the others are there."""
    from minibert4rec.support.datasets import DatasetUnavailable

    calls = []

    def download(name, data_dir="data", **kwargs):
        calls.append(name)
        if name in missing:
            raise DatasetUnavailable(f"{name} is not in {data_dir}/{name} and could not be downloaded (test)")
        return Path(data_dir) / name

    return download, calls


@pytest.fixture()
def data_dir(tmp_path):
    """A data folder that holds ml-100k only (linked from the repository's data/)."""
    if not any((ROOT / "data" / "ml-100k" / f).is_file() for f in ("u.data", "ml-100k.inter")):
        pytest.skip("ml-100k is not in data/: python -m minibert4rec download --dataset ml-100k")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ml-100k").symlink_to(ROOT / "data" / "ml-100k", target_is_directory=True)
    return tmp_path / "data"


@pytest.mark.parametrize("smoke", [False, True])
def test_notebook_data_switches_to_ml100k_with_a_one_line_notice(data_dir, monkeypatch, capsys, smoke):
    from minibert4rec import data as data_module
    from minibert4rec.support import runtime

    download, calls = _fake_download({"ml-1m"})
    monkeypatch.setattr(data_module, "download", download)
    sizes = runtime._sizes_for("ml-1m", smoke)
    data = runtime.notebook_data(sizes, str(data_dir))
    notice = capsys.readouterr().out
    assert calls == ["ml-1m", "ml-100k"]
    assert data.name == "ml-100k" and data.n_users == 943  # ml-100k's users, all of them active enough
    assert len(notice.strip().splitlines()) == 1, notice  # one line, no traceback
    assert "ml-1m" in notice and "uses ml-100k instead" in notice and "download --dataset ml-1m" in notice
    # the rest of the notebook describes the data it really uses: ml-100k's sizes, the same smoke switch
    expected = runtime._sizes_for("ml-100k", smoke)
    assert sizes["dataset"] == "ml-100k" and sizes["smoke"] is smoke
    assert sizes["config"] == expected["config"] and sizes["config"].max_seq_length == (20 if smoke else 50)
    assert sizes["standalone_budget_s"] == expected["standalone_budget_s"]


def test_notebook_data_says_nothing_when_the_dataset_is_there(data_dir, monkeypatch, capsys):
    from minibert4rec import data as data_module
    from minibert4rec.support import runtime

    download, calls = _fake_download(set())
    monkeypatch.setattr(data_module, "download", download)
    sizes = runtime._sizes_for("ml-100k", False)
    before = dict(sizes)
    assert runtime.notebook_data(sizes, str(data_dir)).name == "ml-100k"
    assert capsys.readouterr().out == "" and calls == ["ml-100k"] and sizes == before


def test_notebook_data_without_ml100k_either_stops_with_the_datasets_message(tmp_path, monkeypatch, capsys):
    from minibert4rec import data as data_module
    from minibert4rec.support import runtime
    from minibert4rec.support.datasets import DatasetUnavailable

    download, calls = _fake_download({"ml-1m", "ml-100k"})
    monkeypatch.setattr(data_module, "download", download)
    with pytest.raises(DatasetUnavailable, match="ml-100k is not in"):
        runtime.notebook_data(runtime._sizes_for("ml-1m", False), str(tmp_path))
    assert calls == ["ml-1m", "ml-100k"]


# ------------------------------------------------------------------- a fresh runtime without notebook 05's run
@pytest.mark.parametrize("number", ["06", "07"])  # smoke size: under a minute each on 2 CPU cores
@pytest.mark.integration
def test_without_notebook05s_checkpoint_the_notebook_trains_its_own_model(number, tmp_path):
    """A fresh Colab runtime has no ../runs/notebook05/checkpoint.pt: 06 and 07 train a smaller model of their own
    (SIZES["standalone_budget_s"]) and say so, instead of failing. Smoke size, offline, in a folder without runs/."""
    if not any((ROOT / "data" / "ml-100k" / f).is_file() for f in ("u.data", "ml-100k.inter")):
        pytest.skip("ml-100k is not in data/: python -m minibert4rec download --dataset ml-100k")
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    checkpoint = tmp_path / "runs" / "notebook05" / "checkpoint.pt"
    assert not checkpoint.exists()
    nb = execute(NOTEBOOKS[number], tmp_path, offline_env(MINIBERT4REC_SMOKE="1"), timeout=900)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    shown = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "no checkpoint from notebook 05" in shown.lower(), "the notebook must say that it trained its own model"
    assert not checkpoint.exists()  # it trained without pretending to be notebook 05
