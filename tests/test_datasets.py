"""Tests of the dataset presets (minibert4rec.support.datasets): precedence, the printed lines, the paper's numbers kept
consistent with the authors' scripts, and that an already-preprocessed file is not re-filtered."""

import dataclasses

import pytest

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.data import load_dataset
from minibert4rec.support.datasets import FILE_PRESET, METRICS, PRESETS, apply_preset, option_flag, preset_for


def test_explicit_options_win_and_each_override_is_announced():
    options, lines = apply_preset("beauty", {"mask_ratio": 0.4, "learning_rate": 1e-3, "epochs": 3})
    assert options["mask_ratio"] == 0.4 and options["learning_rate"] == 1e-3 and options["epochs"] == 3
    assert options["max_seq_length"] == 50 and options["min_user_count"] == 0  # the rest is the preset's
    assert lines[0].startswith("preset beauty: min_user_count=0, min_item_count=0, max_seq_length=50, mask_ratio=0.6")
    assert lines[1:] == ["--mask-ratio 0.4 overrides the preset's 0.6", "--lr 0.001 overrides the preset's 0.0001"]


def test_an_explicit_value_equal_to_the_preset_is_not_called_an_override():
    options, lines = apply_preset("ml-1m", {"max_seq_length": 200})
    assert options["max_seq_length"] == 200 and len(lines) == 1


def test_recipe_replaces_training_options_and_only_filters():
    authors, _ = apply_preset("ml-1m")
    recipe, lines = apply_preset("ml-1m", recipe=True)
    assert authors["batch_size"] == 256 and authors["learning_rate"] == 1e-4
    assert recipe["batch_size"] == 32 and recipe["learning_rate"] == 2e-3 and "CPU recipe" in lines[0]
    some, _ = apply_preset("steam", only=["max_seq_length", "mask_ratio"])
    assert some == {"max_seq_length": 50, "mask_ratio": 0.4}


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown preset 'beuaty'; known presets: ml-1m, ml-20m, beauty, steam"):
        apply_preset("beuaty")
    with pytest.raises(ValueError, match="unknown preset"):
        preset_for("some/file.txt", "amazon")


@pytest.mark.parametrize("path, name", [
    ("beauty", "beauty"), ("/somewhere/beauty.txt", "beauty"), ("data/steam/steam.txt", "steam"),
    ("data/ml-1m/ratings.dat", "ml-1m"), ("../shared/data/ml-1m/sequences_by_time.txt", "ml-1m"),
    ("data/ml-20m/ratings.csv", "ml-20m"), ("mine/ratings.dat", "file"), ("x/beauty_small.txt", "file"),
])
def test_preset_for_a_path_follows_the_file_name(path, name):
    assert preset_for(path).name == name
    assert preset_for(path, "steam").name == "steam"  # a named preset always wins


def test_file_preset_changes_nothing_but_says_so():
    options, lines = apply_preset(FILE_PRESET, {"mask_ratio": 0.3})
    assert options == {"min_user_count": 5, "min_item_count": 5, "mask_ratio": 0.3}
    assert "no paper row" in lines[0]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_consistent_with_the_authors_scripts(name):
    preset = PRESETS[name]
    authors = preset.authors
    # gen_data_fin.py: window step = int(prop_sliding_window * max_seq_length)
    assert authors["window_step"] == int(preset.extra["prop_sliding_window"] * authors["max_seq_length"])
    # one mask-last sample per dupe_factor Cloze copies of each window
    assert authors["last_item_ratio"] == pytest.approx(1 / (preset.extra["dupe_factor"] + 1), abs=1e-4)
    assert authors["position_counting"] == "left" and authors["masking"] == "fixed"
    assert 1 <= authors["max_predictions"] <= authors["max_seq_length"]
    # every value of a field BERT4RecConfig has today is a valid value of that field (authors' and recipe's)
    fields = {f.name for f in dataclasses.fields(BERT4RecConfig)}
    for values in (preset.options(), preset.options(recipe=True)):
        BERT4RecConfig(**{k: v for k, v in values.items() if k in fields})
    # raw MovieLens gets the paper's 5-core, the authors' preprocessed files none
    assert (preset.min_user_count, preset.min_item_count) == ((5, 5) if name.startswith("ml-") else (0, 0))


@pytest.mark.parametrize("name", list(PRESETS))
def test_paper_rows_are_complete_and_coherent(name):
    row = PRESETS[name].paper_row
    assert tuple(row) == METRICS
    assert row["HR@1"] <= row["HR@5"] <= row["HR@10"] <= 1 and row["NDCG@5"] <= row["NDCG@10"] <= row["HR@10"]
    assert row["HR@1"] <= row["MRR"] <= row["NDCG@10"]  # MRR >= HR@1 always; here it sits below NDCG@10


def test_beauty_preset_keeps_an_already_preprocessed_file_whole(tmp_path):
    # a 'user item' file in which item 9 occurs only twice and user 3 has 3 items: the default 5/5 k-core drops
    # them; the beauty preset's k-core (none) keeps every line, as the paper's statistics need
    lines = [(1, i) for i in (1, 2, 3, 4, 5, 9)] + [(2, i) for i in (1, 2, 3, 4, 5, 9)] + [(3, i) for i in (1, 2, 3)]
    lines += [(u, i) for u in range(4, 9) for i in (1, 2, 3, 4, 5)]
    path = tmp_path / "my_beauty.txt"  # a file named beauty.txt must be the authors' file: checksummed
    path.write_text("".join(f"{u} {i}\n" for u, i in lines))
    options, _ = apply_preset(preset_for(path, "beauty"))
    kept = load_dataset(path, min_user_count=options["min_user_count"], min_item_count=options["min_item_count"])
    assert kept.n_actions == len(lines) and kept.n_users == 8 and kept.n_items == 6
    filtered = load_dataset(path)  # the package's default 5/5 k-core
    assert (filtered.n_users, filtered.n_items) == (7, 5)  # user 3 and item 9 silently gone


def test_option_flag_matches_the_command_line():
    assert option_flag("mask_ratio") == "--mask-ratio" and option_flag("learning_rate") == "--lr"


def test_download_says_which_source_it_used_and_why(tmp_path, monkeypatch, capsys):
    from minibert4rec.support import datasets

    def grouplens_down(spec, data_dir, progress):
        raise ConnectionError("could not download the zip (no network)")

    def from_wheel(data_dir, progress):
        folder = data_dir / "ml-100k"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\n1\tA\n")
        (folder / "ml-100k.inter").write_text("user_id:token\titem_id:token\n1\t1\n")

    monkeypatch.setattr(datasets, "_from_grouplens", grouplens_down)
    monkeypatch.setattr(datasets, "_from_recbole_wheel", from_wheel)
    monkeypatch.setattr(datasets, "verify_dataset_files", lambda spec, files: None)
    datasets.download("ml-100k", data_dir=tmp_path)
    err = capsys.readouterr().err
    assert "downloading ml-100k from GroupLens" in err
    assert "GroupLens failed: 'could not download the zip (no network)'" in err
    assert "got it from the recbole==1.2.1 wheel on PyPI" in err
