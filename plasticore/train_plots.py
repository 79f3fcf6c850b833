"""The pictures ``plasticore train`` draws: learning curve, spike raster, weight histogram.

* ``curve.png``: accuracy per epoch, train, validation and test; with several
  training seeds, the mean with the standard deviation as error bars. Every point has a
  marker and the epoch axis has whole numbers, so a one-epoch run is readable too.
* ``raster.png``: one test sample through every layer (inputs at the bottom), learning off,
  after training.
* ``weights.png``: the histogram of every weight matrix before and after training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_curve", "plot_raster", "plot_weight_histograms"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curve(histories: list[list], path: Path, title: str) -> None:
    """Draw accuracy per epoch; ``histories`` holds one list of EpochMetrics per seed."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    epochs = [m.epoch for m in histories[0]]
    series = (("train", "train_accuracy", "o-"),
              ("validation", "validation_accuracy", "^-"),
              ("test", "test_accuracy", "s-"))
    for label, name, style in series:
        values = np.array([[getattr(m, name) for m in history] for history in histories], dtype=object)
        if any(v is None for v in values.ravel()):
            continue
        values = 100 * values.astype(float)
        mean = values.mean(axis=0)
        spread = values.std(axis=0, ddof=1) if len(values) > 1 else None
        axes.errorbar(epochs, mean, yerr=spread, fmt=style, capsize=3, label=label)
        axes.annotate(f"{mean[-1]:.1f}", (epochs[-1], mean[-1]), textcoords="offset points",
                      xytext=(6, 0), va="center", fontsize=8)
    seeds = f", mean +- sd of {len(histories)} seeds" if len(histories) > 1 else ""
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title + seeds, fontsize=10)
    axes.set_xticks(epochs)
    axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.8)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_raster(layers: list[np.ndarray], path: Path, title: str) -> None:
    """Draw each layer's ``(ticks, n)`` spikes in its own panel, inputs at the bottom."""
    plt = _pyplot()
    names = ["inputs"] + [f"layer {i}" for i in range(1, len(layers) - 1)] + ["output"]
    heights = [max(1.0, min(3.0, spikes.shape[1] / 60)) for spikes in layers][::-1]
    figure, axes = plt.subplots(len(layers), 1, figsize=(6, 1.2 + sum(heights)), sharex=True,
                                gridspec_kw={"height_ratios": heights})
    for ax, name, spikes in zip(axes, names[::-1], layers[::-1]):
        ticks, neurons = np.nonzero(spikes)
        ax.scatter(ticks, neurons, s=2, marker="|", color="black")
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.set_ylabel(f"{name}\n({spikes.shape[1]})", fontsize=8)
        ax.text(1.0, 1.0, f"{spikes.sum()} spikes", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7)
    axes[-1].set_xlabel("tick")
    axes[-1].set_xlim(-0.5, layers[0].shape[0] - 0.5)
    axes[0].set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_weight_histograms(before: list[np.ndarray], after: list[np.ndarray], path: Path,
                           title: str) -> None:
    """Overlay the histogram of each weight matrix before and after training."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(after), figsize=(3.2 * len(after), 2.8), squeeze=False)
    for index, (ax, w0, w1) in enumerate(zip(axes[0], before, after)):
        w0, w1 = np.asarray(w0, dtype=float).ravel(), np.asarray(w1, dtype=float).ravel()
        edges = np.histogram_bin_edges(np.concatenate([w0, w1]), bins=50)
        ax.hist(w0, bins=edges, alpha=0.5, label="before")
        ax.hist(w1, bins=edges, alpha=0.5, label="after")
        ax.set_title(f"w{index} ({w1.size} weights)", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("weight")
    axes[0][0].set_ylabel("count")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
