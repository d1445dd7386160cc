"""The DSC loss-curve figure (reconstruction and clustering loss per epoch)."""
from __future__ import annotations

import numpy as np

from .. import h5io


def plot_training_curve(history: list[dict], path, title: str = "DSC training") -> None:
    """PNG of recon_loss and kl_loss per epoch, pre-training and joint phases shaded apart.

    ``history``: the estimator's ``history_`` (or rows of train_log.tsv).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in history], dtype=float)
    recon = np.array([r["recon_loss"] for r in history], dtype=float)
    kl = np.array([r["kl_loss"] for r in history], dtype=float)
    joint = np.array([r["phase"] == "joint" for r in history], dtype=bool)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    if np.isfinite(recon).any():
        ax.plot(epochs, recon, "o-", color="tab:blue", label="reconstruction MSE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction MSE (scaled units)")
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(kl).any():
        ax2 = ax.twinx()
        ax2.plot(epochs, kl, "s--", color="tab:red", label="KL(P||Q)")
        ax2.set_ylabel("clustering loss KL(P||Q)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if joint.any() and (~joint).any():
        ax.axvspan(epochs[joint].min() - 0.5, epochs[joint].max() + 0.5, color="0.92", zorder=0)
        ax.text(epochs[joint].min() - 0.4, ax.get_ylim()[1], "joint", va="top", fontsize=8)
    if len(epochs):
        ax.set_xticks(epochs)
    if handles:
        ax.legend(handles, labels, loc="center right", fontsize=8)
    ax.set_title(title)
    with h5io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
