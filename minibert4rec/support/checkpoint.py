"""Checkpoints: one file that holds a run, written atomically, read safely, refused when the data differ.

Its own module because it is plumbing shared by three users -- the trainer (save after every epoch, resume), the
command line (``evaluate``, ``recommend``) and the notebooks (load a trained model) -- and because ``train.py``
should read as the training loop of notebook 05, not as file handling. Notebook 05's section 7 shows what is in
the file; ``train.py`` re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import BERT4RecConfig
from ..data import SequenceData
from .files import atomic_write
from ..model import BERT4Rec

CHECKPOINT_VERSION = 1
CHECKPOINT_KEYS = ("config", "n_items", "model")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with torch.save through ``files.atomic_write`` (a temporary file, fsync, rename): a crash
    never leaves half a checkpoint, and a ``kill -9`` leaves at most a ``.checkpoint.pt.*.tmp`` that the next
    :func:`train` into the same folder deletes."""
    atomic_write(path, writer=lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` -- safely: ``weights_only=True`` runs no pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train first (python -m minibert4rec train --out DIR).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated file, not a torch file, or pickled objects
        raise ValueError(f"checkpoint {path} cannot be read ({error}); it is damaged or not a minibert4rec checkpoint.") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} is not a minibert4rec checkpoint (version {CHECKPOINT_VERSION}).")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}; it is damaged or was not written by minibert4rec's train.")
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
    if "dataset" not in info:
        raise ValueError("this checkpoint does not record its dataset; it was not written by `minibert4rec train`.")
    return load_dataset(info["dataset"], data_dir=info.get("data_dir", "data"),
                        min_user_count=info.get("min_user_count", 5), min_item_count=info.get("min_item_count", 5))


def model_from_checkpoint(state: dict[str, Any], best: bool = True, device: str | torch.device = "cpu") -> BERT4Rec:
    """Rebuild the model of a checkpoint; ``best`` picks the weights with the best validation NDCG@10."""
    config = BERT4RecConfig.from_dict(state["config"])
    model = BERT4Rec(config, state["n_items"])
    model.load_state_dict(state["best_model"] if best and state.get("best_model") else state["model"])
    return model.to(device).eval()
