"""Plots used by several notebooks: dataset statistics, masks, training curves and attention maps.

Every function draws on a matplotlib ``Axes`` (made for you when ``ax`` is None) and returns it, so a notebook can
place several plots in one figure. Every plot has a title and labelled axes.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle


def _axes(ax: Axes | None, size: tuple[float, float] = (6, 4)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def shorten(title: str, width: int = 28) -> str:
    """Trim a long title to ``width`` characters (the plots below wrap titles instead)."""
    return title if len(title) <= width else title[: width - 1] + "…"


def wrap(title: str, width: int = 14) -> str:
    """A title on several lines of at most ``width`` characters (long words are not cut)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width, break_long_words=False)) or title


def plot_sequence_lengths(sequences: Sequence[Sequence[int]], name: str = "", ax: Axes | None = None) -> Axes:
    """Histogram of history lengths (log x axis: a few users have very long histories)."""
    ax = _axes(ax)
    lengths = np.array([len(s) for s in sequences])
    bins = np.logspace(np.log10(max(1, lengths.min())), np.log10(lengths.max() + 1), 40)
    sns.histplot(lengths, bins=bins, ax=ax)
    ax.set_xscale("log")
    ax.axvline(np.median(lengths), color="k", ls="--", label=f"median {np.median(lengths):.0f}")
    ax.set(title=f"History length per user {name}".strip(), xlabel="interactions per user (log scale)",
           ylabel="users")
    ax.legend()
    return ax


def plot_item_popularity(sequences: Sequence[Sequence[int]], name: str = "", ax: Axes | None = None) -> Axes:
    """Interactions per item, most popular first, on log-log axes: the long tail."""
    ax = _axes(ax)
    counts = np.sort(np.bincount(np.concatenate([np.asarray(s) for s in sequences]))[1:])[::-1]
    counts = counts[counts > 0]
    ax.loglog(np.arange(1, len(counts) + 1), counts)
    share = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
    ax.set(title=f"Item popularity {name}: top 10% of items get {share:.0%} of interactions".strip(),
           xlabel="item rank by popularity (log)", ylabel="interactions (log)")
    return ax


def plot_leave_one_out(sequence: Sequence[int], labels: Sequence[str] | None = None, ax: Axes | None = None,
                       last: int = 12) -> Axes:
    """One user's history as boxes: training items, the validation item, the test item (leave-one-out)."""
    shown = list(sequence)[-last:]
    labels = list(labels)[-last:] if labels is not None else [str(i) for i in shown]
    ax = _axes(ax, (min(15, 1.2 * len(shown) + 1.5), 2.8))
    colors = ["#9ecae1"] * (len(shown) - 2) + ["#fdae6b", "#e6550d"]
    for x, (label, color) in enumerate(zip(labels, colors)):
        ax.add_patch(Rectangle((x, 0), 0.95, 1, color=color))
        ax.text(x + 0.47, 0.5, wrap(label, 13), ha="center", va="center", fontsize=8, linespacing=1.1)
    ax.set_xlim(0, len(shown))
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xticks(np.arange(len(shown)) + 0.47, [f"t-{len(shown) - 1 - i}" if i < len(shown) - 1 else "t"
                                                 for i in range(len(shown))], fontsize=8)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in ("#9ecae1", "#fdae6b", "#e6550d")]
    ax.legend(handles, ["train", "validation", "test"], loc="upper left", bbox_to_anchor=(1, 1))
    ax.set(title=f"Leave-one-out split of one history (last {len(shown)} of {len(sequence)} items)",
           xlabel="time step")
    return ax


def plot_mask_matrix(mask: torch.Tensor, title: str, ax: Axes | None = None) -> Axes:
    """A boolean (n, n) attention mask as an image: row = query position, column = key position."""
    ax = _axes(ax, (4, 4))
    ax.imshow(mask.float().numpy(), cmap="Greens", vmin=0, vmax=1)
    n = mask.shape[-1]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set(title=title, xlabel="key position (attended to)", ylabel="query position (attending)")
    return ax


def plot_training_curves(history: pd.DataFrame, metric: str = "valid_full_NDCG@10", x: str = "epoch",
                         axes: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """Training loss and a validation metric against epochs (or ``x="elapsed_seconds"``)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].plot(history[x], history["train_loss"], marker=".")
    axes[0].set(title="Training loss (Cloze cross-entropy)", xlabel=x.replace("_", " "), ylabel="loss")
    rows = history.dropna(subset=[metric]) if metric in history else history.iloc[:0]
    axes[1].plot(rows[x], rows[metric], marker=".", color="C1")
    axes[1].set(title=f"Validation {metric.split('_', 2)[-1]} ({metric.split('_')[1]} ranking)",
                xlabel=x.replace("_", " "), ylabel=metric.split("_", 2)[-1])
    return axes


TICK_FONTSIZE = 9  # readable next to 9-10 pt titles; labels are full titles, never cut


def plot_attention(probs: torch.Tensor, labels: Sequence[str] | None = None, title: str = "Attention",
                   ax: Axes | None = None, xlabels: bool = True, ylabels: bool = True, vmin: float | None = None,
                   vmax: float | None = None, cbar: bool = True) -> Axes:
    """One head's attention probabilities (n, n) as a heat map; rows are queries, columns are keys.

    ``labels`` (e.g. movie titles) are written in full; ``xlabels``/``ylabels`` False leave that axis unlabelled
    (a grid of maps labels its outer axes only). ``vmin``/``vmax`` fix the colour scale (None: this map's own
    minimum and maximum), so that several maps drawn with the same values can be compared colour for colour;
    ``cbar`` False leaves out the colour bar (a grid draws one for all its maps).
    """
    probs = probs.detach().float().cpu().numpy()
    width = max((len(t) for t in labels), default=0) * 0.075 if labels is not None else 0  # inches of label
    ax = _axes(ax, (5 + width, 4.2 + width))
    ticks = list(labels) if labels is not None else False
    sns.heatmap(probs, ax=ax, cmap="viridis", square=True, xticklabels=ticks if xlabels else False,
                yticklabels=ticks if ylabels else False, vmin=vmin, vmax=vmax, cbar=cbar,
                cbar_kws={"label": "attention probability"} if cbar else None)
    ax.set(title=title, xlabel="attended item (key)" if xlabels else "",
           ylabel="attending item (query)" if ylabels else "")
    ax.tick_params(labelsize=TICK_FONTSIZE)
    return ax


def shared_scale(attentions: Sequence[torch.Tensor]) -> tuple[float, float]:
    """One colour scale ``(vmin, vmax)`` for several attention maps: 0 to the largest probability in any of them."""
    return 0.0, max(float(probs.detach().max()) for probs in attentions) or 1.0


def plot_attention_grid(attentions: Sequence[torch.Tensor], labels: Sequence[str] | None = None,
                        suptitle: str = "", shared: bool = True, vmax: float | None = None) -> plt.Figure:
    """Every layer (rows) and head (columns) of one user: ``attentions[layer]`` has shape (h, n, n).

    The titles label the left column's rows and the bottom row's columns, in full, so that the maps stay large.
    ``shared`` (the default) draws every map on ONE colour scale, 0 to ``vmax`` (None: the largest probability of
    any map, :func:`shared_scale`), with one colour bar, and states the scale in the title, so that the same colour
    means the same probability in every panel; ``shared=False`` gives each map its own scale and colour bar.
    """
    n_layers, n_heads = len(attentions), attentions[0].shape[0]
    label_inches = max((len(t) for t in labels), default=0) * 0.075 if labels is not None else 0
    fig, axes = plt.subplots(n_layers, n_heads, squeeze=False,
                             figsize=(5.6 * n_heads + label_inches, 4.8 * n_layers + label_inches))
    vmin, top = shared_scale(attentions) if shared else (None, None)
    if shared and vmax is not None:
        top = float(vmax)
    for layer, probs in enumerate(attentions):
        for head in range(n_heads):
            plot_attention(probs[head], labels, title=f"layer {layer + 1}, head {head + 1}", ax=axes[layer, head],
                           xlabels=layer == n_layers - 1, ylabels=head == 0, vmin=vmin, vmax=top, cbar=not shared)
    if shared:
        mappable = axes[0, 0].collections[0]
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.6, label="attention probability (one scale)")
        suptitle = f"{suptitle}\none colour scale for every panel: {vmin:g} to {top:.3g}".strip()
        fig.suptitle(suptitle)
    else:
        fig.suptitle(suptitle)
        fig.tight_layout(rect=(0, 0, 1, 0.97))  # leave room for the overall title
    return fig


def attention_by_relative_position(probs: torch.Tensor, valid: torch.Tensor, max_offset: int = 20) -> pd.Series:
    """Average attention paid to the key ``offset`` steps away from the query (negative = the past).

    ``probs`` (b, n, n) for one head, ``valid`` (b, n) bool marking real (non-padding) positions.
    """
    b, n, _ = probs.shape
    offsets = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # (n n): key index - query index
    pair_ok = valid[:, :, None] & valid[:, None, :]  # (b n n)
    result = {}
    for k in range(-max_offset, max_offset + 1):
        sel = pair_ok & (offsets == k)[None]
        if sel.any():
            result[k] = float(probs[sel].mean())
    return pd.Series(result, name="mean attention")


def plot_attention_by_offset(series_by_head: dict[str, pd.Series], ax: Axes | None = None) -> Axes:
    """Line plot of :func:`attention_by_relative_position` for several heads."""
    ax = _axes(ax, (8, 3.6))
    for label, series in series_by_head.items():
        ax.plot(series.index, series.values, marker=".", label=label)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(title="Mean attention by relative position", xlabel="key position - query position (negative = past)",
           ylabel="mean attention probability")
    ax.legend(fontsize=8)
    return ax


def attention_direction(probs: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """Where one head's attention goes, as shares of it: ``earlier`` keys, the query ``itself``, ``later`` keys.

    ``probs`` (b, n, n) for one head, ``valid`` (b, n) bool marking real positions; the mean over every real
    query of every row. The three shares add up to 1 (up to the attention a row pays to padding, which is 0).
    """
    n = probs.shape[-1]
    offsets = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # (n n): key index - query index
    rows = probs * valid[:, None, :]  # attention on real keys only
    share = {"earlier": (rows * (offsets < 0)).sum(-1), "itself": (rows * (offsets == 0)).sum(-1),
             "later": (rows * (offsets > 0)).sum(-1)}  # each (b n)
    return {name: float(value[valid].mean()) for name, value in share.items()}
