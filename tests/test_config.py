import pytest

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.support.runtime import is_smoke_run


def test_defaults_are_recboles():
    c = BERT4RecConfig()
    assert (c.hidden_size, c.inner_size, c.n_layers, c.n_heads) == (64, 256, 2, 2)
    assert (c.layer_norm_eps, c.initializer_range, c.mask_ratio, c.loss_type) == (1e-12, 0.02, 0.2, "CE")
    assert c.hidden_act == "gelu" and c.head_dim == 32


@pytest.mark.parametrize("changes, field", [
    ({"n_heads": 3}, "n_heads=3 must divide hidden_size=64"),
    ({"mask_ratio": 1.0}, "mask_ratio=1.0 must be a number in [0, 1)"),
    ({"mask_ratio": -0.1}, "mask_ratio=-0.1"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob=1.5"),
    ({"hidden_act": "mish"}, "hidden_act='mish' is unknown"),
    ({"loss_type": "BCE"}, "loss_type='BCE' is unknown"),
    ({"hidden_size": 0}, "hidden_size=0 must be a positive integer"),
    ({"max_seq_length": 1}, "max_seq_length=1 must be at least 2"),
    ({"device": "tpu"}, "device='tpu' is unknown"),
    ({"window_step": 500}, "window_step=500 must be between 1 and max_seq_length=50"),
])
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        BERT4RecConfig(**changes)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_load_roundtrip(tmp_path, suffix):
    c = BERT4RecConfig(hidden_size=32, n_heads=4, hidden_act="swish", loss_type="BPR", max_seq_length=200)
    c.save(tmp_path / f"cfg{suffix}")
    assert BERT4RecConfig.load(tmp_path / f"cfg{suffix}") == c
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_option_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config option\(s\) \['hiden_size'\]"):
        BERT4RecConfig.from_dict({"hiden_size": 64})
    with pytest.raises(ValueError, match="use a .json, .yaml or .yml"):
        BERT4RecConfig().save(tmp_path / "cfg.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BERT4RecConfig.load(tmp_path / "missing.json")


def test_smoke_switch(monkeypatch):
    monkeypatch.setenv("MINIBERT4REC_SMOKE", "1")
    assert is_smoke_run()
    monkeypatch.setenv("MINIBERT4REC_SMOKE", "0")
    assert not is_smoke_run()


def test_dataset_switch_picks_the_data_and_its_sizes(monkeypatch):
    from minibert4rec.support.runtime import run_sizes

    monkeypatch.delenv("MINIBERT4REC_SMOKE", raising=False)
    monkeypatch.delenv("MINIBERT4REC_DATASET", raising=False)
    full = run_sizes()
    assert full["dataset"] == "ml-1m" and full["config"].max_seq_length == 200 and not full["smoke"]
    monkeypatch.setenv("MINIBERT4REC_DATASET", "ml-100k")  # offline, at its normal size: the CLI's defaults
    small = run_sizes()
    assert small["dataset"] == "ml-100k" and small["config"] == BERT4RecConfig() and not small["smoke"]
    monkeypatch.setenv("MINIBERT4REC_SMOKE", "1")  # smoke sizes, on the dataset asked for
    assert run_sizes()["smoke"] and run_sizes()["config"].epochs == 1 and run_sizes()["dataset"] == "ml-100k"


def test_each_size_and_dataset_keeps_notebook05s_checkpoint_in_its_own_folder(monkeypatch):
    """Running the tests (smoke size) must never overwrite a fully trained model that notebooks 06 and 07 read."""
    from minibert4rec.support.runtime import _sizes_for

    folders = {(name, smoke): _sizes_for(name, smoke)["run_dir"]
               for name in ("ml-1m", "ml-100k", "ml-20m", "/some/where/my data.txt") for smoke in (False, True)}
    full = {k: v for k, v in folders.items() if not k[1]}
    assert full[("ml-1m", False)] == "../runs/notebook05"  # the folder the notebooks' prose names
    assert len(set(full.values())) == len(full)  # one folder per data set at full size
    assert all(v == "../runs/notebook05-smoke" for k, v in folders.items() if k[1])
    assert "../runs/notebook05-smoke" not in full.values()
    assert all(" " not in v and v.count("/") == 2 for v in folders.values())


def test_threads_option(monkeypatch):
    import torch

    from minibert4rec.support import runtime as config_module

    assert BERT4RecConfig().threads == 0 and BERT4RecConfig(threads=3) == BERT4RecConfig()  # not the run's identity
    with pytest.raises(ValueError, match="threads=-1 must be a non-negative integer"):
        BERT4RecConfig(threads=-1)
    for cores, expected in ((1, 1), (2, 1), (4, 2), (16, 4), (None, 1)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert config_module.default_threads() == expected
    before = torch.get_num_threads()
    try:
        assert config_module.set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
