"""The VAE: its KL term, the sampling layer, training, saving, resuming, interpolation."""

import keras
import numpy as np
import pytest

from imagegen.environment import set_seed
from imagegen.latent import attribute_vector, circular_walk, interpolate, lerp, slerp
from imagegen.resumable import fit_resumable
from imagegen.vae import VAE, Sampling, kl_divergence, reconstruction_loss


def tiny_images(count=16, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 1), dtype="float32")
    for image in images:  # a bright bar at a random row: simple structure a tiny VAE can learn
        image[rng.integers(0, size), :, 0] = 1.0
    return images


def tiny_vae(**kwargs):
    set_seed(0)
    vae = VAE(image_size=8, channels=1, latent_dim=2, filters=(8,), dense_units=16, seed=0, **kwargs)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


def test_kl_term_equals_the_closed_form():
    rng = np.random.default_rng(1)
    mean, log_var = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(kl_divergence(mean, log_var))
    variance = np.exp(log_var)
    closed_form = 0.5 * np.sum(variance + mean**2 - 1 - log_var, axis=1)  # KL(N(m, v) || N(0, 1)), summed
    np.testing.assert_allclose(ours, closed_form, rtol=1e-5)
    # ...and the closed form is the KL: a Monte Carlo estimate of E_q[log q(z) - log p(z)] agrees.
    z = mean[0] + np.sqrt(variance[0]) * rng.normal(size=(400_000, 3))
    log_q = -0.5 * np.sum((z - mean[0]) ** 2 / variance[0] + np.log(2 * np.pi * variance[0]), axis=1)
    log_p = -0.5 * np.sum(z**2 + np.log(2 * np.pi), axis=1)
    assert abs(np.mean(log_q - log_p) - closed_form[0]) < 0.02 * max(1.0, closed_form[0])
    assert np.allclose(keras.ops.convert_to_numpy(kl_divergence(np.zeros((2, 4)), np.zeros((2, 4)))), 0.0)


def test_sampling_layer_has_the_asked_mean_and_spread():
    layer = Sampling(seed=3)
    mean = np.tile(np.array([[2.0, -1.0, 0.0]], dtype="float32"), (50_000, 1))
    log_var = np.tile(np.log(np.array([[0.25, 4.0, 1.0]], dtype="float32")), (50_000, 1))
    z = keras.ops.convert_to_numpy(layer([mean, log_var]))
    np.testing.assert_allclose(z.mean(axis=0), [2.0, -1.0, 0.0], atol=0.03)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0, 1.0], rtol=0.02)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.02  # independent dimensions


def test_reconstruction_losses():
    images = np.array([[[[0.0], [1.0]]]], dtype="float32")
    perfect = np.clip(images, 1e-6, 1 - 1e-6)
    assert keras.ops.convert_to_numpy(reconstruction_loss(images, perfect))[0] < 1e-3
    half = np.full_like(images, 0.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reconstruction_loss(images, half)), [2 * np.log(2)], rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reconstruction_loss(images, half, "gaussian", 0.5)), [1.0], rtol=1e-5)  # (0.25 + 0.25) / (2 * 0.5^2)
    with pytest.raises(ValueError, match="bernoulli"):
        reconstruction_loss(images, half, "laplace")


def test_loss_decreases_on_a_tiny_batch():
    vae = tiny_vae()
    history = vae.fit(tiny_images(), epochs=40, batch_size=16, verbose=0).history
    assert set(history) == {"loss", "reconstruction_loss", "kl_loss"}
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    np.testing.assert_allclose(np.array(history["loss"]), np.array(history["reconstruction_loss"]) + np.array(history["kl_loss"]), rtol=1e-4)


def test_save_and_load_give_identical_outputs(tmp_path):
    vae = tiny_vae(reconstruction="gaussian", beta=0.5)
    vae.fit(tiny_images(), epochs=2, batch_size=8, verbose=0)
    vae.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    images = tiny_images(4, seed=9)
    for ours, theirs in zip(vae.encode(images), loaded.encode(images)):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(vae.reconstruct(images), loaded.reconstruct(images))
    assert (loaded.reconstruction, loaded.beta, loaded.latent_dim) == ("gaussian", 0.5, 2)


def test_training_resumes_from_its_checkpoint(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True
                raise KeyboardInterrupt  # a disconnect in the middle of training

    vae = tiny_vae()
    with pytest.raises(KeyboardInterrupt):
        fit_resumable(vae, tiny_images(), tmp_path / "run", epochs=6, batch_size=8, verbose=0, callbacks=[Crash()])
    weights_at_crash = [np.array(w) for w in vae.get_weights()]

    resumed = tiny_vae()  # a fresh process would rebuild the model like this
    history = fit_resumable(resumed, tiny_images(), tmp_path / "run", epochs=6, batch_size=8, verbose=0)
    assert history.epoch == [3, 4, 5]  # only the epochs that were left
    assert (tmp_path / "run" / "model.keras").is_file() and not (tmp_path / "run" / "backup").exists()
    assert not any(np.array_equal(a, b) for a, b in zip(weights_at_crash, resumed.get_weights()) if a.size > 1)


def test_interpolation_endpoints_decode_to_the_endpoints_own_decodings():
    vae = tiny_vae()
    vae.fit(tiny_images(), epochs=3, batch_size=8, verbose=0)
    codes, _ = vae.encode(tiny_images(2, seed=4))
    for method in ("lerp", "slerp"):
        path = interpolate(codes[0], codes[1], 7, method)
        assert path.shape == (7, 2)
        decoded = vae.decode(path)
        np.testing.assert_allclose(decoded[0], vae.decode(codes[:1])[0], atol=1e-5)
        np.testing.assert_allclose(decoded[-1], vae.decode(codes[1:])[0], atol=1e-5)


def test_slerp_keeps_the_norm_where_lerp_loses_it():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=512), rng.normal(size=512)
    middle_slerp, middle_lerp = slerp(a, b, 0.5), lerp(a, b, 0.5)
    typical = np.sqrt(512)
    assert abs(np.linalg.norm(middle_slerp) - typical) / typical < 0.1
    assert np.linalg.norm(middle_lerp) < 0.8 * typical  # the straight line cuts through the low-density middle
    np.testing.assert_allclose(slerp(a, a, 0.3), a, rtol=1e-6)  # parallel inputs fall back to lerp


def test_circular_walk_and_attribute_vector():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    loop = circular_walk(a, b, 8)
    assert loop.shape == (8, 4, 4)
    np.testing.assert_allclose(loop[0], a, rtol=1e-6)
    np.testing.assert_allclose(loop[2], b, atol=1e-6)  # a quarter turn
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 4.0], [12.0, 4.0]])
    np.testing.assert_allclose(attribute_vector(codes, np.array([0, 0, 1, 1]), 0, 1), [10.0, 4.0])
    with pytest.raises(ValueError, match="label 7"):
        attribute_vector(codes, np.array([0, 0, 1, 1]), 0, 7)
