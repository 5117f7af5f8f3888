"""fit_resumable's feed: every example once per epoch, reshuffled, the right number of steps on any backend."""

import keras
import numpy as np
import pytest

from imagegen.environment import set_seed
from imagegen.resumable import _tf_stream, fit_resumable

from test_vae import tiny_images, tiny_vae


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the tf.data stream is TensorFlow's feed")
def test_the_stream_visits_every_example_once_per_pass_and_reshuffles():
    set_seed(0)
    x = {"images": np.arange(10, dtype="float32")[:, None] * np.ones((1, 3), "float32"),
         "context": np.arange(10, dtype="int32")}
    stream, steps = _tf_stream(x, batch_size=4)
    assert steps == 3  # 4 + 4 + a partial batch of 2
    batches = [batch for (batch,) in stream.take(3 * steps)]
    assert [len(batch["context"]) for batch in batches] == [4, 4, 2] * 3
    passes = [np.concatenate([np.asarray(b["context"]) for b in batches[k * steps:(k + 1) * steps]]) for k in range(3)]
    for order in passes:
        assert sorted(order) == list(range(10))
    assert len({tuple(order) for order in passes}) > 1  # reshuffled between passes
    for batch in batches:  # the rows of one example stay together
        np.testing.assert_array_equal(np.asarray(batch["images"])[:, 0], np.asarray(batch["context"]))

    unshuffled, _ = _tf_stream(x, batch_size=4, shuffle=False)
    first_pass = np.concatenate([np.asarray(batch["context"]) for (batch,) in unshuffled.take(steps)])
    np.testing.assert_array_equal(first_pass, np.arange(10))


def test_fit_resumable_takes_one_step_per_batch_of_each_epoch(tmp_path):
    vae = tiny_vae()
    history = fit_resumable(vae, tiny_images(count=20), tmp_path / "run", epochs=3, batch_size=8, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert int(vae.optimizer.iterations) == 3 * 3  # 20 images in batches of 8: 8 + 8 + 4
    assert [path.name for path in (tmp_path / "run").iterdir()] == ["model.keras"]  # saved whole, no partial left
