"""Grids, strips, GIFs and exported slide figures."""

import numpy as np
import pytest
from PIL import Image

from imagegen import viz


def test_to_uint8_scales_and_clips():
    np.testing.assert_array_equal(viz.to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 2.0])), [0, 0, 128, 255, 255])
    already = np.array([1, 2, 3], dtype=np.uint8)
    assert viz.to_uint8(already) is already


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_shows_every_image(channels):
    figure = viz.image_grid(np.random.rand(7, 8, 8, channels), ncols=4, titles=list("abcdefg"))
    shown = [axis for axis in figure.axes if axis.images]
    assert len(shown) == 7 and len(figure.axes) == 8
    assert [axis.get_title() for axis in shown] == list("abcdefg")


def test_image_grid_rejects_mismatched_titles():
    with pytest.raises(ValueError, match="titles"):
        viz.image_grid(np.zeros((3, 4, 4, 3)), titles=["one"])


def test_interpolation_strip_is_one_row():
    figure = viz.interpolation_strip(np.random.rand(5, 8, 8, 3))
    assert len(figure.axes) == 5


def test_tile_layout():
    canvas = viz.tile(np.zeros((5, 4, 6, 3)), ncols=3, padding=1)
    assert canvas.shape == (2 * 5 + 1, 3 * 7 + 1, 3)


def test_save_gif_writes_every_frame(tmp_path):
    frames = np.linspace(0, 1, 6)[:, None, None, None] * np.ones((6, 8, 8, 1))
    path = viz.save_gif(frames, tmp_path / "walk.gif", fps=10, scale=2, pause_at_end=1.0)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.size == (16, 16)
        assert gif.info["duration"] == 100
        gif.seek(5)
        assert gif.info["duration"] == 1100


def test_save_gif_writes_a_strip_for_the_pdf(tmp_path):
    frames = np.linspace(0, 1, 10)[:, None, None, None] * np.ones((10, 8, 8, 3))
    viz.save_gif(frames, tmp_path / "walk.gif", strip_frames=4)
    strip = np.asarray(Image.open(tmp_path / "walk_strip.png"))
    assert strip.shape == (8 + 4, 4 * 10 + 2, 3)  # 4 frames of 8x8, 2-pixel padding
    assert strip[2, 2, 0] == 0 and strip[2, -3, 0] == 255  # the first frame and the last
    viz.save_gif(frames, tmp_path / "plain.gif", strip_frames=0)
    assert not (tmp_path / "plain_strip.png").exists()


def test_save_figure_goes_to_the_figures_folder(tmp_path):
    path = viz.save_figure(viz.image_grid(np.random.rand(2, 4, 4, 3)), "unit_test_grid")
    assert path == tmp_path / "figures" / "unit_test_grid.png" and path.stat().st_size > 0
    assert viz.save_image(np.random.rand(4, 4, 1), "unit_test_image", scale=4).is_file()
    with pytest.raises(ValueError, match="plain file name"):
        viz.save_figure(None, "slides/x.png")


def test_loss_curves_count_epochs_from_one():
    """The training log prints "epoch 1/n" first, so the plot's x axis must start at 1, not at 0."""
    figure = viz.loss_curves({"loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9]})
    lines = figure.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[1, 2, 3], [1, 2, 3]]
    assert list(lines[1].get_ydata()) == [3.1, 2.2, 1.9]
