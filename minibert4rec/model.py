"""BERT4Rec: a bidirectional transformer encoder that fills in masked items of a user's history.

The whole model in one file, top to bottom as the data flows (shapes: b batch, n positions, D hidden, N items):

1. **Embeddings** — item embedding + learned position embedding, then LayerNorm and dropout      (b n) -> (b n D)
2. **Transformer blocks** (``n_layers`` of them) — multi-head self-attention and a position-wise
   feed-forward network, each wrapped as ``LayerNorm(x + Dropout(sublayer(x)))`` (post-LN, as in BERT)
3. **Output layer** (the paper's eq. 7) — ``GELU(h W + b)``, LayerNorm, then a dot product with the
   *shared* item embedding plus an item bias: one score per item                                (b n D) -> (b n N)

Training is the Cloze task (see ``masking.py``): only the masked positions carry a label, and the loss is either
softmax cross-entropy over all N items (``loss_type="CE"``, the paper) or BPR with one sampled negative.

``causal=True`` gives the same encoder a lower-triangular attention mask: each position sees only the past, and
the model is trained to predict the *next* item (SASRec-style). Both models share every line below, so the paper's
"bidirectional beats unidirectional" claim can be measured with nothing else changed.

The model's own options are a small dataclass, :class:`ModelConfig` (``ModelConfig.from_run_config`` picks them
out of a run's flat :class:`BERT4RecConfig`). Departures from the paper (docs/differences.md lists them all):
positions may count from the newest item (``position_counting="right"``; the paper's "left" is the default) and
the output bias may start at log popularity (:meth:`BERT4Rec.init_output_bias_from_popularity`). Dropout on a
CPU uses cheaper random bits (``fast/dropout.py``); attention in CPU training, with dropout or in bfloat16, takes the
same maths in fewer passes over memory (``fast/attention.py``); the full softmax over a large catalogue, or in bfloat16 on
a CPU, is computed in slices with its gradient in closed form (``fast/cross_entropy.py``). The padding row of the item table is 0 and never trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, causal_mask, padding_mask
from .fast import cross_entropy as fast_ce
from .fast.dropout import Dropout
from .support.config import ACTIVATIONS, LOSS_TYPES, BERT4RecConfig


@dataclass(frozen=True)
class ModelConfig:
    """The network's own options (RecBole's names). ``n_items`` comes from the data and is passed separately;
    a run's :class:`BERT4RecConfig` also holds training options, and :meth:`from_run_config` keeps this part."""

    hidden_size: int = 64
    inner_size: int = 256  # the feed-forward network's width
    n_layers: int = 2
    n_heads: int = 2
    hidden_dropout_prob: float = 0.2
    attn_dropout_prob: float = 0.2
    hidden_act: str = "gelu"  # the feed-forward activation, a key of ACTIVATIONS
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    max_seq_length: int = 50  # positions: history + [mask]
    causal: bool = False  # True: each position sees only the past (next-item model)
    norm_first: bool = False  # True: pre-LN blocks
    position_counting: str = "left"  # "left": the oldest item is position 0; "right": the newest is L - 1
    loss_type: str = "CE"  # "CE": softmax over all items; "BPR": one sampled negative
    loss_negatives: int = 0  # k > 0: sampled softmax against k uniform negatives (CE only)

    def __post_init__(self) -> None:
        for name, value, choices in (("hidden_act", self.hidden_act, tuple(ACTIVATIONS)),
                                     ("loss_type", self.loss_type, LOSS_TYPES),
                                     ("position_counting", self.position_counting, ("left", "right"))):
            if value not in choices:
                raise ValueError(f"ModelConfig.{name}={value!r} is not one of {', '.join(map(repr, choices))}.")

    @classmethod
    def from_run_config(cls, config: BERT4RecConfig) -> ModelConfig:
        """The model's fields of a run's flat config (the config files and the command line use those names)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})



class FeedForward(nn.Module):
    """Position-wise feed-forward network: the same two-layer MLP applied to every position separately.

    ``(b, n, D) -> Linear(D, inner) -> activation -> Linear(inner, D) -> Dropout -> (b, n, D)``
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.inner_size)
        self.act = ACTIVATIONS[config.hidden_act]()
        self.down = nn.Linear(config.inner_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


class TransformerBlock(nn.Module):
    """One encoder layer: ``x = LN(x + Drop(MHA(x)))`` then ``x = LN(x + FFN(x))`` (post-LN, BERT and the paper).

    With ``config.norm_first`` the LayerNorms move in front of the sublayers: ``x = x + Drop(MHA(LN(x)))``,
    ``x = x + FFN(LN(x))`` (pre-LN). The residual path then carries the signal untouched from the embeddings to the
    output, the usual remedy for unstable early training of deep post-LN stacks.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.attention = MultiHeadAttention(config.hidden_size, config.n_heads, config.attn_dropout_prob)
        self.attn_dropout = Dropout(config.hidden_dropout_prob)
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor, return_probs: bool = False, last_query_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # x: (b, n, D); attn_mask: bool, broadcastable to (b, h, n, n), True = may attend
        # last_query_only: return (b, 1, D), the output of the last position only (see BERT4Rec.forward)
        residual = x[:, -1:] if last_query_only else x
        if self.norm_first:
            attended, probs = self.attention(self.attn_norm(x), attn_mask=attn_mask, return_probs=return_probs,
                                             fast=not return_probs, last_query_only=last_query_only)
            x = residual + self.attn_dropout(attended)
            return x + self.feed_forward(self.ffn_norm(x)), probs
        attended, probs = self.attention(x, attn_mask=attn_mask, return_probs=return_probs, fast=not return_probs,
                                         last_query_only=last_query_only)
        x = self.attn_norm(residual + self.attn_dropout(attended))
        x = self.ffn_norm(x + self.feed_forward(x))
        return x, probs


class BERT4Rec(nn.Module):
    """The BERT4Rec model of Sun et al. (2019): ``BERT4Rec(ModelConfig(...), n_items)``.

    Item ids follow the package convention: 0 = padding, 1..N = items, N+1 = [mask]. ``forward`` returns hidden
    states; :meth:`item_logits` turns them into one score per item 1..N; :meth:`loss` is the training objective;
    :meth:`predict` scores the next item for left-padded inputs whose last position is [mask] (or, for a causal
    model, the last item of the history).
    """

    def __init__(self, config: ModelConfig | BERT4RecConfig, n_items: int) -> None:
        super().__init__()
        if isinstance(config, BERT4RecConfig):  # a run's flat config: keep the model's fields
            config = ModelConfig.from_run_config(config)
        if n_items < 1:
            raise ValueError(f"n_items={n_items} must be >= 1 (the number of distinct items in the data).")
        self.config = config
        self.n_items = n_items
        self.mask_id = n_items + 1
        D = config.hidden_size
        self.item_embedding = nn.Embedding(n_items + 2, D, padding_idx=0)  # 0 pad, 1..N items, N+1 [mask]
        self.position_embedding = nn.Embedding(config.max_seq_length, D)
        self.embedding_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.embedding_dropout = Dropout(config.hidden_dropout_prob)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        # pre-LN blocks leave the residual stream un-normalised: one last LayerNorm (identity for post-LN)
        self.final_norm = nn.LayerNorm(D, eps=config.layer_norm_eps) if config.norm_first else nn.Identity()
        # output layer: GELU(h W + b) -> LayerNorm -> dot with the shared item embedding + per-item bias
        self.output_dense = nn.Linear(D, D)
        self.output_act = nn.GELU()
        self.output_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT/RecBole initialisation: weights ~ Normal(0, initializer_range), biases 0, LayerNorm (1, 0)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()  # as nn.Embedding(padding_idx=...) starts it; never read
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def set_dropout(self, enabled: bool) -> None:
        """Switch every dropout of the model off (``enabled=False``) or back to the config's probabilities.

        Hidden dropout (embeddings, attention output, feed-forward) and attention dropout alike. Evaluation never
        drops anything either way (``model.eval()``); this changes training only. The trainer uses it for
        ``dropout_start`` and ``dropout_stop``: the share of the epochs that trains with dropout."""
        hidden = self.config.hidden_dropout_prob if enabled else 0.0
        attention = self.config.attn_dropout_prob if enabled else 0.0
        for module in self.modules():
            if isinstance(module, Dropout):
                module.p = hidden
            elif isinstance(module, MultiHeadAttention):
                module.attn_dropout_prob = attention

    @torch.no_grad()
    def init_output_bias_from_popularity(self, item_counts: torch.Tensor) -> None:
        """Start the output bias at the log-popularity of each item: ``b_i = log((c_i + 1) / sum_j (c_j + 1))``.

        ``item_counts`` (N+1,) are the training counts (index 0 = padding). With every other weight near 0 at
        initialisation, the scores are then about ``b_i``, and ``softmax(b)`` is the item popularity: the model
        starts *as* the popularity baseline instead of having to learn it. A training option
        (``BERT4RecConfig.output_bias_init``), not the paper's (zeros); the architecture is unchanged. With zeros,
        learning popularity pushes every item embedding along a shared direction, out of its tiny initial scale;
        starting *at* popularity skips that push. (+1 keeps unseen items finite.)
        """
        counts = item_counts.to(self.output_bias.device).float()
        if counts.dim() != 1 or counts.numel() != self.n_items + 1:
            raise ValueError(f"item_counts must have shape ({self.n_items + 1},) (index 0 = padding, then items "
                             f"1..{self.n_items}); got {tuple(counts.shape)}. Use SequenceData.item_counts().")
        smoothed = counts[1:] + 1.0  # (N,)
        self.output_bias.copy_((smoothed / smoothed.sum()).log())

    # ------------------------------------------------------------------ encoder
    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The position index of every input: (b, n) -> (b, n), or (1, n) when it is the same for every row.

        Inputs are left-padded (``masking.left_pad``). ``config.position_counting`` says where counting starts:

        * "left" (the paper's, the authors' and RecBole's): the oldest item of the window is position 0, the next
          1, ... The authors pad on the right; we pad on the left and subtract each row's padding, so every real
          item gets the same index as under right padding, and the outputs at real positions are the same (nobody
          attends to padding, whatever its position). Padding itself gets index 0; it is never read.
        * "right": the most recent position is always index ``max_seq_length - 1``, whatever the history's
          length: "the last item" has one embedding for every user.

        Both are exact under ``masking.trim_left_padding``: dropping all-padding columns changes no real
        item's index.
        """
        b, n = input_ids.shape
        L = self.config.max_seq_length
        if self.config.position_counting == "right":
            return torch.arange(L - n, L, device=input_ids.device)[None]  # (1 n)
        n_pad = (input_ids == 0).sum(dim=1, keepdim=True)  # (b 1): left padding, so the first n_pad columns
        return (torch.arange(n, device=input_ids.device)[None] - n_pad).clamp(min=0)  # (b n)

    def forward(
        self, input_ids: torch.Tensor, return_attention: bool = False, last_position_only: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode ``input_ids`` (b, n) into hidden states (b, n, D).

        Returns ``(hidden, attentions)``; ``attentions`` holds one (b, h, n, n) probability tensor per layer when
        ``return_attention`` is True (the slow, from-scratch path), else it is empty (the fast path: PyTorch's fused
        kernel, or ``fast/attention.py`` when training on a CPU with attention dropout).

        ``last_position_only=True`` returns (b, 1, D), the last position's hidden state, for the same result with
        less work: the last layer's other outputs are never read by a prediction, so that layer computes keys
        and values for every position but the query, attention and feed-forward network for the last one only.
        """
        b, n = input_ids.shape
        if n > self.config.max_seq_length:
            raise ValueError(
                f"input has {n} positions but max_seq_length={self.config.max_seq_length}; "
                "keep only the most recent items (masking.left_pad does)."
            )
        x = self.item_embedding(input_ids) + self.position_embedding(self.positions(input_ids))  # (b n D)
        x = self.embedding_dropout(self.embedding_norm(x))
        attn_mask = padding_mask(input_ids)  # (b 1 1 n): nobody attends to padding
        if self.config.causal:
            attn_mask = attn_mask & causal_mask(n, device=input_ids.device)  # (b 1 n n): nor to the future
        attentions = []
        for i, block in enumerate(self.blocks):
            last_query_only = last_position_only and i == len(self.blocks) - 1
            x, probs = block(x, attn_mask, return_probs=return_attention, last_query_only=last_query_only)
            if return_attention:
                attentions.append(probs)
        return self.final_norm(x), attentions

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of items 1..N for each hidden state: (..., D) -> (..., N). Column j is item j + 1."""
        h = self.output_norm(self.output_act(self.output_dense(hidden)))
        item_weights = self.item_embedding.weight[1 : self.n_items + 1]  # (N D): shared with the input side
        return h @ item_weights.T + self.output_bias

    # --------------------------------------------------------------------- loss
    def loss(self, input_ids: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training loss at the labelled positions (labels > 0; 0 = no label).

        Only the labelled rows of the hidden states go through the output layer: with mask_ratio 0.2 that is a
        fifth of the work of scoring every position. Three objectives:

        * ``loss_type="CE"``, ``loss_negatives=0`` (the paper's): softmax cross-entropy over all N items. When
          the ``(m, N)`` logits would be large on a CPU, or under CPU bfloat16 autocast,
          ``fast_ce.linear_cross_entropy`` computes the same loss and gradients a slice of rows at a time, never
          holding the whole matrix and in fewer passes over it;
        * ``loss_type="CE"``, ``loss_negatives=k``: ``fast_ce.sampled_softmax_loss`` against k uniformly drawn items
          shared by the batch (``generator`` draws them; default: torch's global generator);
        * ``loss_type="BPR"``: one uniformly sampled negative per target.
        """
        hidden, _ = self(input_ids)
        is_target = labels > 0
        if not bool(is_target.any()):
            raise ValueError("labels hold no target (all 0): every training row needs at least one masked item.")
        targets = labels[is_target] - 1  # (m,) column index of each target item
        # the first half of item_logits, on the labelled rows only; the item matrix is the second half
        h = self.output_norm(self.output_act(self.output_dense(hidden[is_target])))  # (m D)
        item_weights = self.item_embedding.weight[1 : self.n_items + 1]  # (N D)
        if self.config.loss_type == "CE":
            k = self.config.loss_negatives
            if 0 < k < self.n_items:
                negatives = torch.randperm(self.n_items, generator=generator,
                                           device=generator.device if generator is not None else "cpu")[:k]
                return fast_ce.sampled_softmax_loss(h, item_weights, self.output_bias, targets, negatives.to(h.device))
            large = h.shape[0] * self.n_items * 4 > fast_ce.LARGE_LOGITS_BYTES
            sliced_for_bf16 = torch.is_autocast_enabled("cpu") and fast_ce.used_under_cpu_autocast()
            if h.device.type == "cpu" and (large or sliced_for_bf16):
                return fast_ce.linear_cross_entropy(h, item_weights, self.output_bias, targets)
            logits = (h @ item_weights.T + self.output_bias).float()  # (m N)
            return F.cross_entropy(logits, targets)
        # BPR: one uniformly sampled negative per target, never the target itself (it may be another item of the
        # history, as in RecBole). Only the two scores are computed, not the (m, N) logit matrix.
        offset = torch.randint(1, self.n_items, targets.shape, device=targets.device, generator=generator)
        negatives = (targets + offset) % self.n_items

        def score(columns: torch.Tensor) -> torch.Tensor:  # (m,) the score of one item per row
            return (h * item_weights[columns]).sum(dim=-1).float() + self.output_bias[columns].float()

        return -F.logsigmoid(score(targets) - score(negatives)).mean()

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scores for the next item, read at the last position: (b, n) -> (b, N + 1), column = item id.

        Column 0 (padding) is ``-inf`` so that it never ranks. Inputs come from
        ``masking.inference_inputs`` (history + [mask]) or, for a causal model, ``masking.left_pad(history)``.
        """
        hidden, _ = self(input_ids, last_position_only=True)  # (b 1 D)
        logits = self.item_logits(hidden[:, -1]).float()  # (b N)
        return F.pad(logits, (1, 0), value=-math.inf)  # (b N+1)

    def num_parameters(self) -> int:
        """The number of trained numbers (every parameter tensor's size, summed)."""
        return sum(p.numel() for p in self.parameters())


class PopularityModel(nn.Module):
    """The baseline every recommender must beat: score each item by how often it was seen in training."""

    def __init__(self, item_counts: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_counts", torch.log1p(item_counts.float()))

    @torch.no_grad()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        scores = self.log_counts.clone()
        scores[0] = -math.inf
        return scores.expand(input_ids.shape[0], -1)  # (b N+1): the same list for everybody
