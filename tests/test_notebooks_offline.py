"""Every notebook runs offline on ml-100k at its normal size (MINIBERT4REC_DATASET=ml-100k, no smoke switch).

Each notebook is copied into a fresh folder (``tmp/notebooks/``, with ``tmp/data`` pointing at the repository's
``data/``), so that its ``../runs`` is the test's own, and executed in a new kernel whose environment names ml-100k,
has no MINIBERT4REC_SMOKE and routes every HTTP(S) request and pip to a closed port (no network). 01-04 run by
default; 05-07 train for minutes, so they run with ``pytest --run-slow`` (README: "Offline, on ml-100k").
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
def test_notebook_runs_offline_on_ml100k(number, folder):
    _check(number, folder)


@pytest.mark.slow
@pytest.mark.parametrize("number", ["05", "06", "07"])  # in this order: 06 and 07 read the checkpoint of 05
def test_training_notebook_runs_offline_on_ml100k(number, folder):
    _check(number, folder)


def test_a_missing_dataset_stops_the_data_cell_with_a_short_message(tmp_path):
    """ML-1m asked for, not in data/, no network: the data cell says what to do in three lines, no stack trace,
    and tqdm stays silent although ipywidgets is missing (a stub package that fails to import stands in for it)."""
    from nbclient.exceptions import CellExecutionError

    (tmp_path / "data").mkdir()
    stub = tmp_path / "no_ipywidgets" / "ipywidgets"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('ipywidgets is not installed (test stub)')\n")
    env = offline_env(MINIBERT4REC_DATASET="ml-1m")
    env["PYTHONPATH"] = os.pathsep.join([str(stub.parent), env["PYTHONPATH"]])
    with pytest.raises(CellExecutionError) as failure:
        execute(NOTEBOOKS["01"], tmp_path, env, timeout=300)
    report = str(failure.value)  # nbclient: the cell's source, its stderr, then the error as the kernel showed it
    assert "path = download(DATASET, data_dir=DATA_DIR)" in report  # the data cell, not an earlier one
    shown = report.split("------------------")[-1].strip().splitlines()
    assert shown[0].startswith("DatasetUnavailable: ml-1m is not in ../data/ml-1m and could not be downloaded")
    assert "put it at ../data/ml-1m.zip" in shown[1] and "MINIBERT4REC_DATASET=ml-100k" in shown[2]
    assert len(shown) == 3 and not any(line.startswith(("Traceback", "  File", "Cell In")) for line in shown)
    assert "Warning" not in report  # the tqdm fallback without ipywidgets is silent
