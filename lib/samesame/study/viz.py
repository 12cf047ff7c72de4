"""Plots the notebooks show and save: group sizes, image grids, threshold curves, galleries."""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from samesame.image.images import open_rgb

sns.set_theme(style="whitegrid", context="notebook")


def _draw_listing(ax, path, title, size: int = 160) -> None:
    """A listing's image as a square thumbnail with its title; a grey tile naming why when there is none."""
    image, status = open_rgb(path, max_side=size * 2) if isinstance(path, str) else (None, "missing")
    if image is None:
        ax.imshow(np.full((size, size, 3), 200, dtype=np.uint8))
        ax.text(size / 2, size / 2, f"no image\n({status})", ha="center", va="center", fontsize=8, color="dimgrey")
    else:
        ax.imshow(np.asarray(image.resize((size, size))))
    _caption(ax, title)


def _caption(ax, text: str, width: int = 28, color: str = "black") -> None:
    ax.set_title("\n".join(textwrap.wrap(str(text), width)[:3]), fontsize=7, color=color)
    ax.axis("off")


def plot_group_sizes(table: pd.DataFrame, max_size: int = 20):
    """Bar chart of 'products in the class' -> 'number of classes' (sizes above max_size pooled)."""
    counts = table["n_groups"]
    shown = counts[counts.index <= max_size].copy()
    if (counts.index > max_size).any():
        shown.loc[f">{max_size}"] = counts[counts.index > max_size].sum()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar([str(i) for i in shown.index], shown.to_numpy(), color="tab:blue")
    ax.set(xlabel="products in the class (group size)", ylabel="number of classes", yscale="log",
           title="Group sizes: most products are listed twice")
    return fig


def plot_title_lengths(titles: pd.Series):
    """Histogram of title lengths in words."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(titles.str.split().map(len), bins=40, color="tab:green")
    ax.set(xlabel="words in title", ylabel="listings", title="Title length")
    return fig


def show_groups(df: pd.DataFrame, groups: Sequence, per_group: int = 5, thumb: int = 140):
    """One row per label group: its listings' images with their titles."""
    fig, axes = plt.subplots(len(groups), per_group, figsize=(per_group * 2.1, len(groups) * 2.4), squeeze=False)
    for row, group in zip(axes, groups):
        members = df[df["label_group"] == group].head(per_group)
        for ax in row[len(members):]:
            ax.axis("off")
        for ax, path, title in zip(row, members["image_path"], members["title"]):
            _draw_listing(ax, path, title, thumb)
    fig.tight_layout()
    return fig


def show_pair(df: pd.DataFrame, i: int, j: int, label: str):
    """Two listings side by side with a caption (e.g. their phash distance)."""
    fig, axes = plt.subplots(1, 2, figsize=(5, 3))
    for ax, r in zip(axes, (i, j)):
        _draw_listing(ax, df["image_path"].iloc[r], df["title"].iloc[r])
    fig.suptitle(label, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sweeps(sweeps: Mapping[str, pd.DataFrame], chosen: Mapping[str, float] | None = None,
                xlabel: str = "threshold", title: str = "Mean F1 vs threshold"):
    """F1-vs-threshold curves, one per named sweep, with the chosen thresholds marked."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, sweep in sweeps.items():
        ax.plot(sweep["threshold"], sweep["mean_f1"], marker=".", label=name)
    for name, t in (chosen or {}).items():
        ax.axvline(t, ls="--", lw=1, color="grey")
        ax.annotate(f"{name}: {t:g}", (t, ax.get_ylim()[0]), rotation=90, fontsize=8, va="bottom")
    ax.set(xlabel=xlabel, ylabel="mean F1", title=title)
    ax.legend()
    return fig


def _nothing_to_plot(title: str):
    """An empty figure that says so (e.g. fine-tuning skipped for lack of images)."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, f"{title}: nothing to plot", ha="center", va="center")
    ax.axis("off")
    return fig


def plot_scores_bar(table: pd.DataFrame, value_cols: Sequence[str] = ("train_mean_f1", "test_mean_f1"),
                    title: str = "Mean F1"):
    """Grouped horizontal bars of a results table indexed by model/method name."""
    if table.empty:
        return _nothing_to_plot(title)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.5))
    table[list(value_cols)].plot.barh(ax=ax)
    ax.set(xlabel="mean F1", title=title, xlim=(0, 1))
    ax.invert_yaxis()
    return fig


def plot_pool_curve(curve: pd.DataFrame | None, title: str = "Held-out mean F1 as the searched pool grows"):
    """Mean F1 (± std over held-out folds) against the number of listings searched, one line per recipe."""
    if curve is None or curve.empty:
        return _nothing_to_plot(title)
    fig, ax = plt.subplots(figsize=(7, 4))
    for steps, rows in curve.groupby("steps", sort=False):
        ax.errorbar(rows["pool"], rows["mean_f1"], yerr=rows["std_f1"].fillna(0), marker="o", capsize=3, label=steps)
    ax.set(xscale="log", xlabel="listings searched (held-out fold + padding of other groups)", ylabel="mean F1",
           title=title)
    ax.legend()
    return fig


def show_query(df: pd.DataFrame, query: int, predicted: Sequence[int], max_shown: int = 6, thumb: int = 120):
    """The seed's gallery: a query's true group (top) and predicted group (bottom).

    Titles are coloured: green = correct match, red = false positive, orange = a
    true match the prediction missed (false negative).
    """
    labels = df["label_group"].to_numpy()
    truth = [int(j) for j in np.flatnonzero(labels == labels[query])]
    predicted = [int(j) for j in predicted]
    rows = {"true group": truth, "predicted": predicted}
    fig, axes = plt.subplots(2, max_shown, figsize=(max_shown * 1.9, 5.2), squeeze=False)
    for ax_row, (name, members) in zip(axes, rows.items()):
        for ax in ax_row[len(members[:max_shown]):]:
            ax.axis("off")
        for ax, j in zip(ax_row, members[:max_shown]):
            colour = "green" if (j in truth and j in predicted) else ("red" if j in predicted else "darkorange")
            _draw_listing(ax, df["image_path"].iloc[j], df["title"].iloc[j], thumb)
            ax.title.set_color(colour)
        ax_row[0].text(-0.15, 0.5, f"{name}\n({len(members)})", transform=ax_row[0].transAxes, rotation=90,
                       va="center", ha="right", fontsize=9)
    fig.suptitle(f"query {df['posting_id'].iloc[query]}: green = right, red = false positive, orange = missed",
                 fontsize=9)
    fig.tight_layout()
    return fig


CURVE_TITLES = {"loss": "training loss", "accuracy": "training accuracy",
                "selection_mean_f1": "held-out groups: mean F1"}


def plot_training_curves(curves: pd.DataFrame, metrics: Sequence[str] = ("loss", "accuracy", "selection_mean_f1")):
    """Per-epoch curves, one line per configuration (e.g. arcface-module): training loss and accuracy beside
    the held-out groups' mean F1, so memorising (accuracy up, held-out F1 flat or down) shows at a glance."""
    if curves.empty:
        return _nothing_to_plot("training curves")
    metrics = [m for m in metrics if m in curves]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=curves, x="epoch", y=metric, hue="config", marker="o", ax=ax)
        ax.set(title=CURVE_TITLES.get(metric, metric))
    fig.tight_layout()
    return fig
