"""Pictures for the notebooks and the slides: grids, strips, GIFs, exported figures.

Images may be float in [0, 1] or uint8, shaped (n, height, width, channels)
with 1 or 3 channels. ``save_figure`` writes into ``slides/figures/``, the
only place the talk's slides take their pictures from.
"""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np


def to_uint8(images):
    """float [0, 1] or uint8 images -> uint8, same shape (floats are clipped)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.round(np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _for_display(image):
    """A single image ready for imshow: drop a 1-channel axis, keep RGB."""
    image = to_uint8(image)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def image_grid(images, ncols=None, titles=None, size=1.6, suptitle=None, cmap="gray"):
    """Show images in a grid; returns the matplotlib Figure.

    images: (n, h, w, c) float [0, 1] or uint8 (c is 1 or 3).
    ncols: images per row (default: about square).
    titles: n short strings, or None.
    size: inches per image.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    count = len(images)
    if count == 0:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != count:
        raise ValueError(f"got {len(titles)} titles for {count} images")
    ncols = ncols or math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    title_space = 0.35 if titles is not None else 0.0
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * (size + title_space) + (0.4 if suptitle else 0)), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            axis.imshow(_for_display(images[index]), cmap=cmap, vmin=0, vmax=255)
            if titles is not None:
                axis.set_title(titles[index], fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


def interpolation_strip(images, labels=None, size=1.4, title=None):
    """One row of images, e.g. an interpolation from a start to an end; returns the Figure."""
    return image_grid(images, ncols=len(images), titles=labels, size=size, suptitle=title)


def tile(images, ncols=None, padding=2, background=255):
    """Tile images into one uint8 picture (h', w', c), with ``padding`` pixels between them."""
    images = to_uint8(images)
    count, height, width, channels = images.shape
    ncols = ncols or math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    canvas = np.full(
        (nrows * (height + padding) + padding, ncols * (width + padding) + padding, channels), background, np.uint8
    )
    for index, image in enumerate(images):
        row, col = divmod(index, ncols)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def save_gif(frames, path, fps=12, scale=1, loop=0, pause_at_end=0.0, strip_frames=8):
    """Write frames (n, h, w, c), float [0, 1] or uint8, as an animated GIF; returns the path.

    scale: integer upscaling (nearest neighbour) so small images stay crisp.
    pause_at_end: extra seconds the last frame stays on screen.
    strip_frames: also write ``<name>_strip.png`` beside it, that many evenly spaced frames side by side,
        for where an animation cannot play (the talk's PDF); 0: no strip.
    """
    from PIL import Image

    frames = to_uint8(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"frames must be (n, height, width, channels) with n >= 1, got shape {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    if scale != 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    pictures = [Image.fromarray(frame) for frame in frames]
    durations = [int(1000 / fps)] * len(pictures)
    durations[-1] += int(1000 * pause_at_end)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, loop=loop)
    if strip_frames:
        chosen = np.unique(np.linspace(0, len(frames) - 1, min(strip_frames, len(frames))).round().astype(int))
        Image.fromarray(tile(frames[chosen], ncols=len(chosen))).save(path.with_name(f"{path.stem}_strip.png"))
    return path


def figures_dir():
    """Where slide figures go: ``IMAGEGEN_FIGURES``, else the repository's slides/figures.

    The repository is found from the installed package (an editable install
    in a clone); elsewhere (pip install from git, Colab) ./slides/figures.
    """
    if os.environ.get("IMAGEGEN_FIGURES"):
        folder = pathlib.Path(os.environ["IMAGEGEN_FIGURES"])
    else:
        repository = pathlib.Path(__file__).resolve().parents[2]
        in_clone = (repository / "slides").is_dir() and (repository / "pyproject.toml").is_file()
        folder = repository / "slides" / "figures" if in_clone else pathlib.Path.cwd() / "slides" / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _figure_path(name):
    """slides/figures/<name>.png, for a plain name like "vae_samples"."""
    if not name or any(char in name for char in "/\\ ") or name.endswith(".png"):
        raise ValueError(f"name must be a plain file name without extension or spaces, e.g. 'vae_samples'; got {name!r}")
    return figures_dir() / f"{name}.png"


def save_figure(figure, name, dpi=150):
    """Save a matplotlib Figure as slides/figures/<name>.png for the talk; returns the path.

    name: a short file name without extension, e.g. "vae_samples".
    """
    path = _figure_path(name)
    figure.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def save_image(image, name, scale=1):
    """Save one image (h, w, c) as slides/figures/<name>.png, upscaled by ``scale``; returns the path."""
    from PIL import Image

    image = to_uint8(image)
    if image.shape[-1] == 1:
        image = image[..., 0]
    if scale != 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    path = _figure_path(name)
    Image.fromarray(image).save(path)
    return path


def show_gif(path):
    """Display a GIF file in a notebook (returns an IPython Image to leave as a cell's result)."""
    from IPython.display import Image as IPythonImage

    return IPythonImage(filename=str(path))


def similarity_matrix(scores, images, labels, title=None, size=0.75):
    """A heatmap of scores (n_images, n_labels) with each row's image drawn at its left; returns the Figure.

    images: (n_images, h, w, c) float [0, 1] or uint8; labels: n_labels column captions.
    """
    import matplotlib.pyplot as plt

    scores = np.asarray(scores)
    rows, columns = scores.shape
    figure, axes = plt.subplots(figsize=(1.5 + (columns + 1) * size, 1.8 + rows * size))
    axes.imshow(scores, cmap="viridis", extent=(-0.5, columns - 0.5, rows - 0.5, -0.5))
    for row, image in enumerate(to_uint8(images)):
        axes.imshow(image.squeeze(), cmap="gray", extent=(-1.45, -0.55, row + 0.45, row - 0.45))
    threshold = scores.min() + 0.6 * (scores.max() - scores.min())
    for (row, column), value in np.ndenumerate(scores):
        axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="black" if value > threshold else "white")
    axes.set_xlim(-1.5, columns - 0.5)
    axes.set_ylim(rows - 0.5, -0.5)
    axes.set_xticks(range(columns), labels, rotation=60, ha="right", fontsize=8)
    axes.set_yticks([])
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure


def loss_curves(history, keys=None, title=None, size=(9, 2.6)):
    """Plot a Keras History's curves, one panel per metric with its validation twin; returns the Figure."""
    import matplotlib.pyplot as plt

    logs = history.history if hasattr(history, "history") else dict(history)
    keys = keys or [key for key in logs if not key.startswith("val_")]
    figure, axes = plt.subplots(1, len(keys), figsize=size, squeeze=False)
    for axis, key in zip(axes[0], keys):
        epochs = np.arange(1, len(logs[key]) + 1)  # epoch 1 is the first, as the training log counts
        axis.plot(epochs, logs[key], label="train")
        if f"val_{key}" in logs:
            axis.plot(epochs, logs[f"val_{key}"], label="validation")
        axis.set_title(key.replace("_", " "), fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def latent_scatter(codes, labels, class_names=None, title=None, size=5.0, prior_circles=(1.0, 2.0)):
    """Scatter 2-D codes coloured by label, with circles of radius 1 and 2 of the N(0, I) prior.

    codes: (n, 2); labels: (n,) integers. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    codes, labels = np.asarray(codes), np.asarray(labels)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"latent_scatter draws 2-D codes, got shape {codes.shape}")
    figure, axis = plt.subplots(figsize=(size + 1.2, size))
    points = axis.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
    for radius in prior_circles:
        axis.add_patch(plt.Circle((0, 0), radius, fill=False, linestyle="--", color="gray", linewidth=0.8))
    colorbar = figure.colorbar(points, ticks=np.unique(labels))
    if class_names is not None:
        colorbar.ax.set_yticklabels([class_names[label] for label in np.unique(labels)])
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_aspect("equal")
    axis.set_title(title or "codes (encoder means); dashed: prior N(0, I) at 1 and 2 sigma", fontsize=9)
    figure.tight_layout()
    return figure
