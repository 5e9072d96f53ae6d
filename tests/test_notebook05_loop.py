"""The training loop that notebook 05 writes by hand is the package's: same losses, same weights.

The notebook's cells tagged ``handwritten-loop`` are run here on their own, then trained side by side with
``train.train_epoch`` from the same seed on the same batches.
"""

import json
from pathlib import Path

import torch

from minibert4rec import distributed
from minibert4rec.data import synthetic_sequences
from minibert4rec.masking import ClozeDataset
from minibert4rec.model import BERT4Rec
from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.train import make_optimizer, make_scheduler, train_epoch

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_training_on_a_gpu.ipynb"


def handwritten_loop() -> dict:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    tagged = ["".join(c["source"]) for c in cells if "handwritten-loop" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 2, "notebook 05 should tag its loss cell and its step/epoch cell 'handwritten-loop'"
    namespace = {"torch": torch, "F": torch.nn.functional, "BERT4Rec": BERT4Rec}
    for source in tagged:
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


def test_the_notebooks_loop_equals_train_epoch():
    loop = handwritten_loop()
    data = synthetic_sequences(n_users=150, n_items=80, seed=1)
    config = BERT4RecConfig(hidden_size=16, inner_size=32, n_heads=2, max_seq_length=16, batch_size=16, epochs=2,
                            warmup_steps=5, learning_rate=5e-3, device="cpu", seed=0, hidden_dropout_prob=0.2)
    dataset = ClozeDataset(data.split().train, config.max_seq_length, config.mask_ratio, data.mask_id, data.n_items,
                           seed=config.seed)
    total = dataset.num_batches(config.batch_size) * config.epochs

    def fresh():
        torch.manual_seed(0)
        model = BERT4Rec(config, data.n_items)
        optimizer = make_optimizer(model, config)
        return model, optimizer, make_scheduler(optimizer, config, total)

    ours, package = fresh(), fresh()
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        our_loss = loop["train_one_epoch"](ours[0], dataset, ours[1], ours[2], config, epoch)
        torch.manual_seed(epoch)
        row = train_epoch(package[0], package[0].loss, dataset, package[1], package[2], config, epoch,
                          batch_size=config.batch_size, device=torch.device("cpu"), bf16=False,
                          parallel=distributed.current(), progress=False)
        assert abs(our_loss - row["train_loss"]) < 1e-5
    for a, b in zip(ours[0].parameters(), package[0].parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    start = fresh()[0].state_dict()["item_embedding.weight"]
    assert not torch.allclose(ours[0].state_dict()["item_embedding.weight"], start)  # and it did learn something


def test_the_notebooks_loss_is_the_models():
    loop = handwritten_loop()
    data = synthetic_sequences(n_users=60, n_items=40, seed=2)
    config = BERT4RecConfig(hidden_size=16, inner_size=32, n_heads=2, max_seq_length=12, device="cpu", seed=0)
    dataset = ClozeDataset(data.split().train, config.max_seq_length, 0.3, data.mask_id, data.n_items, seed=0)
    inputs, labels = next(dataset.batches(32, epoch=1))
    torch.manual_seed(0)
    model = BERT4Rec(config, data.n_items).eval()
    assert torch.allclose(loop["masked_cross_entropy"](model, inputs, labels), model.loss(inputs, labels), atol=1e-6)
    shifted = labels.clone()
    shifted[labels > 0] = labels[labels > 0] % data.n_items + 1  # other targets: another loss
    assert not torch.allclose(loop["masked_cross_entropy"](model, inputs, shifted), model.loss(inputs, labels))
