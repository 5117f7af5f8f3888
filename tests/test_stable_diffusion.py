"""Stable Diffusion from our modules: shapes, samplers, errors, and parity with KerasCV on random weights."""

import numpy as np
import pytest
from keras import ops

from imagegen import diffusion
from imagegen.diffusion import DDIM, DiscreteSchedule, DPMSolverPlusPlus
from imagegen.stable_diffusion import StableDiffusion, UNet, from_config_name, from_diffusers, from_keras_cv, from_preset
from imagegen.stable_diffusion.weights import assign_in_order, keras_cv_arrays, write_keras_h5

RNG = np.random.default_rng(0)
# The full-size networks take about 15 GB together: `make test` runs these in a pytest process of their own,
# so that the memory is given back before the notebooks run.
FULL_SIZE = pytest.mark.full_size


@pytest.fixture(scope="module")
def tiny():
    return from_config_name("tiny", img_height=32, img_width=32, jit_compile=False)


# -- modules, tiny -----------------------------------------------------------------------------
@FULL_SIZE
def test_sd_v1_unet_has_keras_cv_parameter_count():
    assert UNet.from_config_name("sd-v1").count_params() == 859_520_964


def test_tiny_modules_shapes(tiny):
    latents = RNG.normal(size=(2, 4, 4, 4)).astype("float32")
    context = RNG.normal(size=(2, 16, 32)).astype("float32")
    noise = tiny.unet([latents, np.array([10.0, 900.0], "float32"), context])
    assert tuple(noise.shape) == (2, 4, 4, 4)
    assert tuple(tiny.decoder(latents).shape) == (2, 8, 8, 3)  # the tiny VAE shrinks by 2
    assert tuple(tiny.image_encoder(RNG.uniform(-1, 1, (1, 32, 32, 3)).astype("float32")).shape) == (1, 16, 16, 4)


def test_unet_reads_the_context(tiny):
    latents = RNG.normal(size=(1, 4, 4, 4)).astype("float32")
    t = np.array([500.0], "float32")
    a, b = (RNG.normal(size=(1, 16, 32)).astype("float32") for _ in range(2))
    assert np.max(np.abs(ops.convert_to_numpy(tiny.unet([latents, t, a]) - tiny.unet([latents, t, b])))) > 1e-4


def test_module_save_load_round_trip(tmp_path, tiny):
    import keras

    path = tmp_path / "unet.keras"
    tiny.unet.save(path)
    loaded = keras.models.load_model(path)
    inputs = [RNG.normal(size=(1, 4, 4, 4)).astype("float32"), np.array([3.0], "float32"),
              RNG.normal(size=(1, 16, 32)).astype("float32")]
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(inputs)), ops.convert_to_numpy(tiny.unet(inputs)), atol=1e-6)
    tiny.decoder.save(tmp_path / "decoder.keras")
    decoder = keras.models.load_model(tmp_path / "decoder.keras")
    assert decoder.keras_cv_order == tiny.decoder.keras_cv_order
    np.testing.assert_allclose(ops.convert_to_numpy(decoder(inputs[0])), ops.convert_to_numpy(tiny.decoder(inputs[0])), atol=1e-6)


# -- schedulers: imagegen.diffusion's, the pixel-space model's ---------------------------------------
def test_the_pipeline_uses_the_pixel_space_samplers(tiny):
    assert type(tiny.scheduler) is diffusion.DDIM and isinstance(tiny.scheduler.schedule, diffusion.DiscreteSchedule)


def test_ddim_plan_is_keras_cv_s():
    plan = DDIM().plan(5)
    assert [t for t, _, _ in plan] == [999, 749, 500, 250, 0]  # KerasCV's round(i * 999 / 4), noisiest first
    alphas = DiscreteSchedule.scaled_linear().alpha_bars
    assert plan[-1].a_next == 1.0 and plan[0].a_next == pytest.approx(alphas[749])


def test_alphas_match_keras_cv():
    constants = pytest.importorskip("keras_cv.src.models.stable_diffusion.constants")
    np.testing.assert_allclose(DiscreteSchedule.scaled_linear().alpha_bars, np.asarray(constants._ALPHAS_CUMPROD), atol=1e-6)


@pytest.mark.parametrize("scheduler", [DDIM(), DPMSolverPlusPlus()])
def test_scheduler_recovers_data_with_an_exact_noise_prediction(scheduler):
    """With the true noise of a fixed x0, every step keeps x0's estimate exact and ends on x0."""
    x0 = RNG.normal(size=(1, 4, 4, 4))
    noise = RNG.normal(size=x0.shape)
    plan = scheduler.plan(8)
    a = plan[0][1]
    x = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    state = None
    for _, a_t, a_next in plan:
        eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)  # the exact noise for this x0
        x, estimate, state = scheduler.step(x, eps, a_t, a_next, state)
        np.testing.assert_allclose(estimate, x0, atol=1e-6)
    np.testing.assert_allclose(x, x0, atol=1e-6)


# -- pipeline, tiny ------------------------------------------------------------------------------
def test_text_to_image_is_uint8_and_seeded(tiny):
    a = tiny.text_to_image("a red flower", batch_size=2, num_steps=3, seed=1)
    b = tiny.text_to_image("a red flower", batch_size=2, num_steps=3, seed=1)
    assert a.dtype == np.uint8 and a.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(a, b)


def test_one_unet_call_per_step(tiny, monkeypatch):
    calls = []
    original = tiny._unet_call
    monkeypatch.setattr(tiny, "_unet_call", lambda *inputs: calls.append(inputs[0].shape[0]) or original(*inputs))
    tiny.text_to_image("a flower", batch_size=3, num_steps=4, seed=0)
    assert calls == [6, 6, 6, 6]  # conditional and unconditional halves together


def test_image_to_image_and_inpaint(tiny):
    image = RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    out = tiny.image_to_image("a flower", image, strength=0.5, num_steps=4, seed=0)
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    painted = tiny.inpaint("a flower", image, mask, num_steps=4, seed=0)
    np.testing.assert_array_equal(painted[0][~mask], image[~mask])


def test_compiled_pipeline_matches_the_eager_one(tiny):
    """XLA (TensorFlow) or jax.jit (JAX) around the guided UNet call and the decoder changes nothing."""
    compiled = StableDiffusion(tiny.text_encoder, tiny.unet, tiny.decoder, tiny.image_encoder, img_height=32, img_width=32,
                               jit_compile=True)
    eager = tiny.text_to_image("a blue flower", batch_size=2, num_steps=3, seed=4)
    assert np.max(np.abs(compiled.text_to_image("a blue flower", batch_size=2, num_steps=3, seed=4).astype(int) - eager)) <= 1


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_gives_finite_images_and_keeps_the_vae_float32(policy):
    """Full mode's policies (mixed_float16 on a GPU, mixed_bfloat16 on a TPU), run on the CPU: half-precision text
    encoder and UNet, float32 VAE and sampler, finite images."""
    import keras

    sd = from_config_name("tiny", img_height=32, img_width=32, dtype=policy, jit_compile=False)
    half = policy.split("_")[1]
    assert sd.unet.dtype_policy.compute_dtype == half and sd.decoder.dtype_policy.compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    latents = []
    images = sd.generate_image(sd.encode_text("a flower"), batch_size=2, num_steps=3, seed=0,
                               on_step=lambda step, x, x0: latents.append(keras.ops.convert_to_numpy(x)))
    assert images.dtype == np.uint8 and images.std() > 0
    assert len(latents) == 3 and all(np.isfinite(x).all() for x in latents)  # uint8 would hide a NaN


def test_dpm_solver_pipeline_runs(tiny):
    fast = StableDiffusion(tiny.text_encoder, tiny.unet, tiny.decoder, img_height=32, img_width=32, scheduler="dpm++2m",
                           jit_compile=False)
    assert fast.text_to_image("a flower", num_steps=3, seed=0).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="unknown scheduler"):
        StableDiffusion(tiny.text_encoder, tiny.unet, tiny.decoder, img_height=32, img_width=32, scheduler="euler")


@pytest.mark.parametrize("size", [(30, 32), (32, 34)])
def test_bad_sizes_name_the_multiple(size):
    with pytest.raises(ValueError, match="multiple of"):
        from_config_name("tiny", img_height=size[0], img_width=size[1], jit_compile=False)


def test_bad_inputs_get_clear_errors(tiny):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="strength must be in"):
        tiny.image_to_image("x", image, strength=0.0)
    with pytest.raises(ValueError, match="strength must be in"):
        tiny.image_to_image("x", image, strength=1.5)
    with pytest.raises(ValueError, match="mask has shape"):
        tiny.inpaint("x", image, np.ones((16, 16)))
    with pytest.raises(ValueError, match="resize it first"):
        tiny.image_to_image("x", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="no prompts"):
        tiny.text_to_image([])
    with pytest.raises(ValueError, match="not both"):
        tiny.generate_image(tiny.encode_text("x"), diffusion_noise=np.zeros((4, 4, 4)), seed=1)
    with pytest.warns(UserWarning, match="dropped"):
        tiny.encode_text("flower " * 40)


def test_weight_assignment_checks_shapes(tiny):
    arrays = [np.zeros(v.shape) for v in tiny.decoder.weights]
    with pytest.raises(ValueError, match="different architecture"):
        assign_in_order(tiny.decoder, arrays[:-1])
    arrays[0] = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="expects shape"):
        assign_in_order(tiny.decoder, arrays)


def test_preset_offline_names_files_and_cache(monkeypatch):
    from imagegen.network import OfflineError

    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    with pytest.raises(OfflineError, match="kcv_diffusion_model.h5") as error:
        from_preset("sd-v1.4")
    assert "huggingface.co/fchollet/stable-diffusion" in str(error.value) and "put them in" in str(error.value)


# -- parity with KerasCV on random weights (full-size modules) -----------------------------------
@pytest.fixture(scope="module")
def keras_cv_sd():
    stable_diffusion = pytest.importorskip("keras_cv.models.stable_diffusion")
    import keras

    keras.utils.set_random_seed(0)
    return dict(text_encoder=stable_diffusion.TextEncoder(77, download_weights=False),
                unet=stable_diffusion.DiffusionModel(256, 256, 77, download_weights=False),  # KerasCV's UNet
                decoder=stable_diffusion.Decoder(256, 256, download_weights=False),
                image_encoder=stable_diffusion.ImageEncoder(download_weights=False))


@pytest.fixture(scope="module")
def ours(keras_cv_sd):
    return from_keras_cv(keras_cv_sd["text_encoder"], keras_cv_sd["unet"], keras_cv_sd["decoder"], keras_cv_sd["image_encoder"])


def _timestep_embedding(timestep, dim=320):
    """KerasCV's sinusoidal timestep embedding (its pipeline computes it outside the model)."""
    frequencies = np.exp(-np.log(10000.0) * np.arange(dim // 2) / (dim // 2))
    angles = timestep * frequencies
    return np.concatenate([np.cos(angles), np.sin(angles)])[None].astype("float32")


@FULL_SIZE
def test_from_preset_loads_files_in_the_published_format(keras_cv_sd, monkeypatch):
    """from_preset("sd-v1.4") end to end, on h5 files written from KerasCV's models in its published files' format.

    The real files cannot be downloaded here; these have the same layout (Keras-2 weight h5, which
    KerasCV's Keras 3 code reads by position). They go into the cache with their own sha256 pins,
    so the download step finds them, checks them and never touches the network.
    """
    from imagegen.data.download import sha256_of
    from imagegen.paths import cache_dir
    from imagegen.stable_diffusion import weights

    stable_diffusion = pytest.importorskip("keras_cv.models.stable_diffusion")
    folder = cache_dir("stable_diffusion")
    parts = ("text_encoder", "unet", "decoder", "image_encoder")
    pins = {}
    for part in parts:
        filename, _ = weights.SD_V1_4_FILES[part]
        write_keras_h5(keras_cv_sd[part], folder / filename)
        pins[part] = (filename, sha256_of(folder / filename))
    monkeypatch.setattr(weights, "SD_V1_4_FILES", pins)
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")  # proof that nothing is fetched

    # KerasCV itself reads such a file: the format is the one its published files use.
    reread = stable_diffusion.Decoder(256, 256, download_weights=False)
    reread.load_weights(str(folder / pins["decoder"][0]))

    sd = from_preset("sd-v1.4", img_height=256, img_width=256, jit_compile=False)
    for module, model in ((sd.text_encoder, "text_encoder"), (sd.unet, "unet"), (sd.decoder, "decoder"),
                          (sd.image_encoder, "image_encoder")):
        expected, loaded = keras_cv_arrays(keras_cv_sd[model]), weights.ordered_variables(module)
        assert len(loaded) == len(expected), model
        for ours_variable, theirs in zip(loaded, expected):  # one pair at a time: the UNet alone is 3.4 GB
            assert np.array_equal(ops.convert_to_numpy(ours_variable), ops.convert_to_numpy(theirs)), ours_variable.path
    latent = RNG.normal(size=(1, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(sd.decoder(latent)), reread.predict_on_batch(latent), atol=1e-4)


@FULL_SIZE
def test_unet_matches_keras_cv(keras_cv_sd, ours):
    latent = RNG.normal(size=(1, 32, 32, 4)).astype("float32")
    context = RNG.normal(size=(1, 77, 768)).astype("float32")
    theirs = keras_cv_sd["unet"].predict_on_batch(
        {"latent": latent, "timestep_embedding": _timestep_embedding(681), "context": context})
    mine = ops.convert_to_numpy(ours.unet([latent, np.array([681.0], "float32"), context]))
    assert np.max(np.abs(mine - theirs)) <= 1e-4


@FULL_SIZE
def test_vae_matches_keras_cv(keras_cv_sd, ours):
    latent = RNG.normal(size=(1, 32, 32, 4)).astype("float32")
    decoded = keras_cv_sd["decoder"].predict_on_batch(latent)
    assert np.max(np.abs(ops.convert_to_numpy(ours.decoder(latent)) - decoded)) <= 1e-4
    image = RNG.uniform(-1, 1, size=(1, 64, 64, 3)).astype("float32")
    encoded = keras_cv_sd["image_encoder"].predict_on_batch(image)
    assert np.max(np.abs(ops.convert_to_numpy(ours.image_encoder(image)) - encoded)) <= 1e-4


@FULL_SIZE
def test_generate_image_matches_keras_cv(keras_cv_sd, ours):
    keras_cv = pytest.importorskip("keras_cv")
    from keras_cv.models import stable_diffusion

    from imagegen.clip.tokenizer import vocabulary_path

    pipeline = keras_cv.models.StableDiffusion(img_height=256, img_width=256, jit_compile=False)
    pipeline._text_encoder, pipeline._diffusion_model = keras_cv_sd["text_encoder"], keras_cv_sd["unet"]
    pipeline._decoder = keras_cv_sd["decoder"]
    pipeline._tokenizer = stable_diffusion.SimpleTokenizer(vocabulary_path())  # the vocabulary we ship: no download
    noise = RNG.normal(size=(1, 32, 32, 4)).astype("float32")
    theirs = pipeline.generate_image(pipeline.encode_text("an astronaut riding a horse"), num_steps=3, diffusion_noise=noise)
    mine = ours.generate_image(ours.encode_text("an astronaut riding a horse"), num_steps=3, diffusion_noise=noise)
    assert mine.shape == theirs.shape == (1, 256, 256, 3)
    assert np.max(np.abs(mine.astype(int) - theirs.astype(int))) <= 1


# -- parity with diffusers and transformers (PyTorch on the CPU, random weights) -----------------
def test_diffusers_loader_matches_diffusers_and_transformers(diffusers_folder):
    folder, unet, vae, text, torch = diffusers_folder
    assert not list(folder.rglob("*.bin"))  # safetensors only
    sd = from_diffusers(folder, img_height=16, img_width=16, jit_compile=False)
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    context = rng.normal(size=(2, 16, 32)).astype("float32")
    timesteps = np.array([10.0, 700.0], "float32")
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    nhwc = lambda t: t.detach().numpy().transpose(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        theirs = nhwc(unet(nchw(latents), torch.from_numpy(timesteps), encoder_hidden_states=torch.from_numpy(context)).sample)
        images = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32")
        their_mean = nhwc(vae.encode(nchw(images)).latent_dist.mean) * 0.18215
        their_decoded = nhwc(vae.decode(torch.from_numpy(latents.transpose(0, 3, 1, 2)) / 0.18215).sample)
        ids = sd.tokenizer(["a red flower", "an astronaut riding a horse"])
        their_text = text(torch.from_numpy(ids.astype("int64"))).last_hidden_state.numpy()
    assert np.max(np.abs(ops.convert_to_numpy(sd.unet([latents, timesteps, context])) - theirs)) <= 1e-4
    assert np.max(np.abs(ops.convert_to_numpy(sd.image_encoder(images)) - their_mean)) <= 1e-4
    assert np.max(np.abs(ops.convert_to_numpy(sd.decoder(latents)) - their_decoded)) <= 1e-4
    assert np.max(np.abs(ops.convert_to_numpy(sd.text_encoder(ids)) - their_text)) <= 1e-4


def test_diffusers_loader_refuses_pickles_and_wrong_folders(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"block_out_channels": [32, 64], "attention_head_dim": 2, '
                                                   '"cross_attention_dim": 32, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], '
                                                   '"layers_per_block": 1, "norm_num_groups": 8}')
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pickle files are never loaded"):
        from_diffusers(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_diffusers(tmp_path / "unet")
