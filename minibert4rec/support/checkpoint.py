"""Checkpoints: one file that holds a run, written atomically, read safely, refused when the data differ.

Its own module because it is plumbing shared by three users -- the trainer (save after every epoch, resume), the
command line (``evaluate``, ``recommend``) and the notebooks (load a trained model) -- and because ``train.py``
should read as the training loop of notebook 05, not as file handling. Notebook 05's section 7 shows what is in
the file; ``train.py`` re-exports these names.
"""

from __future__ import annotations

import hashlib
import numbers
from pathlib import Path
from typing import Any

import torch

from .config import BERT4RecConfig
from ..data import SequenceData
from .files import atomic_write, regular_file
from ..model import BERT4Rec

CHECKPOINT_VERSION = 1
CHECKPOINT_KEYS = ("config", "n_items", "model")


def content_sha256(state: Any) -> str:
    """sha256 of a checkpoint's content (every tensor's dtype, shape and bytes, every other value's repr, keys in
    sorted order; the ``sha256`` entry itself left out): the same before saving and after loading, so that
    :func:`load_checkpoint` detects a damaged file that torch can still read."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=repr):
                if key != "sha256" or value is not state:
                    digest.update(repr(key).encode())
                    feed(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())

    feed(state)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save through ``files.atomic_write`` (a temporary file, fsync, rename): a crash
    never leaves half a checkpoint, and a ``kill -9`` leaves at most a ``.checkpoint.pt.*.tmp`` that the next
    :func:`train` into the same folder deletes. The content's sha256 (:func:`content_sha256`) is stored with it."""
    state = {**state, "sha256": content_sha256(state)}
    atomic_write(path, writer=lambda f: torch.save(state, f))


def _check_fields(path: Path, state: dict[str, Any]) -> None:
    """The entries the command line and the trainer read: the right types, or one ``ValueError``."""
    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"checkpoint {path}: its {key!r} entry is {type(state.get(key)).__name__} "
                          f"{state.get(key)!r:.60}, not {what}; the file is damaged or was not written by minibert4rec.")

    if not isinstance(state["config"], dict):
        raise bad("config", "a mapping")
    if isinstance(state["n_items"], bool) or not isinstance(state["n_items"], numbers.Integral) or state["n_items"] < 1:
        raise bad("n_items", "a positive integer")
    for key in ("model", "best_model"):
        weights = state.get(key)
        if key == "best_model" and weights is None:
            continue
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise bad(key, "a mapping of weight tensors")
    if "epoch" in state and (isinstance(state["epoch"], bool) or not isinstance(state["epoch"], numbers.Integral)):
        raise bad("epoch", "an integer")
    info = state.get("dataset")
    if info is None:
        return
    if not isinstance(info, dict):
        raise bad("dataset", "a mapping")
    for key, kind, what in (("dataset", str, "a string"), ("data_dir", str, "a string"), ("name", str, "a string"),
                            ("min_user_count", numbers.Integral, "an integer"),
                            ("min_item_count", numbers.Integral, "an integer"), ("fingerprint", dict, "a mapping")):
        if key in info and (not isinstance(info[key], kind) or isinstance(info[key], bool)):
            raise ValueError(f"checkpoint {path}: its dataset entry {key!r} is {type(info[key]).__name__} "
                             f"{info[key]!r:.60}, not {what}; the file is damaged or was not written by minibert4rec.")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` -- safely: ``weights_only=True`` runs no pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train first (python -m minibert4rec train --out DIR).")
    regular_file(path, "checkpoint")  # a FIFO would block forever, /dev/zero never end
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated file, not a torch file, or pickled objects
        first = " ".join(str(error).split())
        first = first if len(first) <= 120 else first[:119] + "…"
        raise ValueError(f"checkpoint {path} cannot be read ({first}); it is damaged or not a minibert4rec checkpoint.") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} is not a minibert4rec checkpoint (version {CHECKPOINT_VERSION}).")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}; it is damaged or was not written by minibert4rec's train.")
    _check_fields(path, state)
    stored = state.pop("sha256", None)
    if stored is not None and stored != content_sha256(state):
        raise ValueError(f"checkpoint {path} is damaged: its content does not match the sha256 stored when it was "
                         "written; train again (or resume from an intact copy).")
    return state


def check_checkpoint_data(state: dict[str, Any], data: SequenceData, source: str | Path = "the checkpoint",
                          sequences: bool = True) -> None:
    """Refuse a checkpoint whose data set is not ``data``: its numbers would be silently wrong (another item
    behind each output column) or end in an IndexError. Compared: the number of items, the item mapping and --
    with ``sequences`` (evaluate, resume) -- the users' sequences, which the metrics are computed from.
    Checkpoints written before fingerprints existed can only be compared on their number of items."""
    if state["n_items"] != data.n_items:
        raise ValueError(f"{source} was trained on {state['n_items']:,} items but the data loaded now "
                         f"({data.name or 'unnamed'}) has {data.n_items:,}; use the dataset, --min-user-count and "
                         "--min-item-count it was trained with, or train a new model.")
    stored = (state.get("dataset") or {}).get("fingerprint")
    if not stored:
        return
    now = data.fingerprint()
    keys = {"item_ids_sha256": "the item mapping (the raw id behind each item id)"}
    if sequences:
        keys.update({"n_users": "the number of users", "sequences_sha256": "the users' sequences"})
    differ = [what for key, what in keys.items() if stored.get(key) != now[key]]
    if differ:
        raise ValueError(f"{source} was trained on other data than the data loaded now: {' and '.join(differ)} "
                         f"differ (trained on {stored.get('name') or 'unnamed'}: {stored.get('n_users')} users, "
                         f"{stored.get('n_items')} items; now {now['name'] or 'unnamed'}: {now['n_users']} users, "
                         f"{now['n_items']} items). Its numbers would be wrong; load the same file with the same "
                         "--min-user-count/--min-item-count, or train a new model.")


def checkpoint_data(state: dict[str, Any]) -> SequenceData:
    """Reload the data set a checkpoint written by ``python -m minibert4rec train`` records (file, k-core)."""
    from ..data import load_dataset

    info = state.get("dataset") or {}
    if not isinstance(info, dict) or not isinstance(info.get("dataset"), str):
        raise ValueError("this checkpoint does not record its dataset; it was not written by `minibert4rec train`.")
    return load_dataset(info["dataset"], data_dir=info.get("data_dir", "data"),
                        min_user_count=info.get("min_user_count", 5), min_item_count=info.get("min_item_count", 5))


def model_from_checkpoint(state: dict[str, Any], best: bool = True, device: str | torch.device = "cpu") -> BERT4Rec:
    """Rebuild the model of a checkpoint; ``best`` picks the weights with the best validation NDCG@10."""
    config = BERT4RecConfig.from_dict(state["config"])
    model = BERT4Rec(config, state["n_items"])
    weights = state["best_model"] if best and state.get("best_model") else state["model"]
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [f"{k} {tuple(weights[k].shape)} (the config needs {tuple(v.shape)})" for k, v in expected.items()
             if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        what = (f"weights of the wrong shape: {', '.join(wrong[:2])}" if wrong else
                f"missing weights {missing[:3]}" if missing else f"unknown weights {unexpected[:3]}")
        raise ValueError(f"the checkpoint's weights do not fit its own config (hidden_size={config.hidden_size}, "
                         f"n_layers={config.n_layers}, {state['n_items']} items): {what}; the file is damaged.")
    model.load_state_dict(weights)
    return model.to(device).eval()
