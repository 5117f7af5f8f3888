"""The mini Stable Diffusion: its training parts (tiny configs), the shipped weights' format, textual inversion, the CLI."""

import json

import numpy as np
import pytest
from keras import ops

from imagegen.diffusion.schedules import DiscreteSchedule, get_schedule
from imagegen.stable_diffusion import Decoder, Encoder, StableDiffusion, UNet, from_config_name, from_preset
from imagegen.stable_diffusion import mini_asset
from imagegen.stable_diffusion.training import (AutoencoderTrainer, latent_diffusion_model, measure_latent_scale,
                                                unet_of, with_latent_scale)

RNG = np.random.default_rng(0)
HAS_MINI = (mini_asset.ASSET_DIR / "mini.safetensors").exists()
needs_mini = pytest.mark.skipif(not HAS_MINI, reason="the mini weights are not built: python -m imagegen.train mini")


@pytest.fixture(scope="module")
def tiny():
    return from_config_name("tiny", img_height=32, img_width=32, jit_compile=False, progress=False)


@pytest.fixture(scope="module")
def mini_sd():
    return from_preset("mini", progress=False)


# -- training parts, tiny ----------------------------------------------------------------------
def test_discrete_schedule_training_power_favours_noisy_steps():
    import keras

    schedule = get_schedule({"name": "scaled_linear", "training_power": 0.5})
    timesteps, signal, noise = schedule.training_levels(20000, keras.random.SeedGenerator(0))
    steps = ops.convert_to_numpy(timesteps)
    assert steps.min() >= 0 and steps.max() <= 999 and np.all(steps == np.rint(steps))  # SD's timesteps themselves
    assert np.mean(steps >= 500) == pytest.approx(1 - 0.5**2, abs=0.02)  # P(u^0.5 >= 0.5) = 0.75
    np.testing.assert_allclose(ops.convert_to_numpy(signal) ** 2 + ops.convert_to_numpy(noise) ** 2, 1.0, atol=1e-5)
    assert get_schedule(schedule.get_config()).training_power == 0.5
    with pytest.raises(ValueError, match="training_power"):
        DiscreteSchedule.scaled_linear(training_power=0)


def test_unet_prediction_is_part_of_its_config():
    unet = UNet.from_config_name("tiny", prediction="v")
    assert UNet.from_config(unet.get_config()).config["prediction"] == "v"
    with pytest.raises(ValueError, match="prediction"):
        UNet.from_config_name("tiny", prediction="x0")


def test_pipeline_turns_v_into_noise_exactly(tiny, monkeypatch):
    """With the exact v of a fixed x0 at every step, a v-predicting pipeline ends on x0."""
    pipeline = StableDiffusion(tiny.text_encoder, UNet.from_config_name("tiny", prediction="v"), tiny.decoder,
                               img_height=32, img_width=32, jit_compile=False, progress=False)
    x0 = RNG.normal(size=(1, *pipeline.latent_shape)).astype("float32")
    levels = {float(t): a for t, a, _ in pipeline.scheduler.plan(6)}

    def exact_v(latents, timestep, *_):
        a = levels[float(timestep)]
        noise = (ops.convert_to_numpy(latents) - np.sqrt(a) * x0) / np.sqrt(1 - a)
        return ops.convert_to_tensor((np.sqrt(a) * noise - np.sqrt(1 - a) * x0).astype("float32"))  # v

    monkeypatch.setattr(pipeline, "guided_prediction", exact_v)
    start = ops.convert_to_tensor(RNG.normal(size=x0.shape).astype("float32"))
    latents = pipeline._denoise(start, None, None, 6, 7.5)
    np.testing.assert_allclose(ops.convert_to_numpy(latents), x0, atol=1e-4)


def test_autoencoder_trainer_learns_and_the_latent_scale_is_measured():
    import keras

    encoder, decoder = Encoder(channels=(8, 16), groups=4, latent_scale=1.0), Decoder(channels=(8, 16), groups=4, latent_scale=1.0)
    trainer = AutoencoderTrainer(encoder, decoder, kl_weight=1e-4, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    images = np.repeat(RNG.uniform(0, 1, (4, 1, 1, 3)), 16, axis=1).repeat(16, axis=2).astype("float32")  # flat colours
    history = trainer.fit(np.tile(images, (8, 1, 1, 1)), batch_size=8, epochs=6, verbose=0).history["reconstruction"]
    assert history[-1] < 0.5 * history[0]
    scale = measure_latent_scale(encoder, images)
    scaled_encoder, scaled_decoder = with_latent_scale(encoder, scale), with_latent_scale(decoder, scale)
    latents = ops.convert_to_numpy(scaled_encoder(images * 2 - 1))
    assert latents.std() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(ops.convert_to_numpy(scaled_decoder(latents)), ops.convert_to_numpy(decoder(latents / scale)),
                               atol=1e-5)


def test_latent_diffusion_model_trains_the_unet_on_sd_timesteps():
    import keras

    unet = UNet.from_config_name("tiny", prediction="v")
    model = latent_diffusion_model(unet, 4, 16, training_power=0.5, seed=0)
    model.set_null_context(np.zeros((16, 32), "float32"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    data = {"images": RNG.normal(size=(16, 4, 4, 4)).astype("float32"), "context": RNG.normal(size=(16, 16, 32)).astype("float32")}
    before = [w.copy() for w in unet.get_weights()]
    model.fit(data, batch_size=8, epochs=1, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, unet.get_weights()))
    ema = unet_of(model)
    assert isinstance(ema, UNet) and ema is not unet


@pytest.mark.filterwarnings("error:Skipping variable loading for optimizer")  # a learner would read it as a fault
def test_a_finished_recipe_stage_is_loaded_not_retrained(tmp_path):
    import keras

    from imagegen.stable_diffusion.mini_recipe import _train_stage

    def trainer():
        model = AutoencoderTrainer(Encoder(channels=(8,), groups=4, latent_scale=1.0),
                                   Decoder(channels=(8,), groups=4, latent_scale=1.0), kl_weight=1e-4, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        return model

    images = RNG.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    first, stage = trainer(), tmp_path / "vae"
    history, resumed = _train_stage(first, images, stage, 1, 4, images[:1])
    assert not resumed and history["seconds"] > 0 and (stage / "done.weights.h5").exists()
    assert not [path.name for path in stage.iterdir() if path.name.startswith(".")]  # no temporary left behind
    again = trainer()
    assert _train_stage(again, images, stage, 1, 4, images[:1]) == (history, True)
    for ours, theirs in zip(again.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_the_recipe_names_its_data_sets_and_refuses_others(tmp_path):
    from imagegen.clip.recipes import toy_clip
    from imagegen.stable_diffusion.mini_recipe import train_mini

    with pytest.raises(ValueError, match="toy_world"):
        train_mini(tmp_path, output=tmp_path, dataset="flowers102", num_images=8)
    with pytest.raises(ValueError, match="unknown recipe settings"):
        train_mini(tmp_path, output=tmp_path, datasets="toy_world")
    with pytest.raises(ValueError, match="toy_world"):
        toy_clip(dataset="pets")


def test_the_toy_flower_recipe_changes_only_what_it_names():
    from imagegen.stable_diffusion.mini_recipe import RECIPE, TOY_FLOWER_CHANGES, recipe_for

    assert recipe_for() == RECIPE == recipe_for(dataset="toy_world")  # the shipped model's recipe
    flowers = recipe_for(dataset="toy_flowers", unet_epochs=3)
    assert {k for k in RECIPE if flowers[k] != RECIPE[k]} == set(TOY_FLOWER_CHANGES) | {"unet_epochs"}
    assert flowers["vae_crop"] == 0 and flowers["unet_loss"] == "mae" and flowers["unet_epochs"] == 3
    with pytest.raises(ValueError, match="unknown recipe settings"):
        recipe_for(vae_crops=16)


def test_the_unet_learning_rate_warms_up_then_decays():
    from imagegen.stable_diffusion.mini_recipe import recipe_for, unet_schedule

    world = recipe_for()
    peak, warmup = world["unet_learning_rate"], world["unet_warmup_steps"]
    rate = unet_schedule(world, 1000)
    assert float(rate(0)) == 0.0 and float(rate(warmup // 2)) == pytest.approx(peak / 2, rel=1e-4)
    assert float(rate(warmup)) == pytest.approx(peak, rel=1e-4) and float(rate(1000)) == pytest.approx(0.05 * peak, rel=1e-4)
    flowers = unet_schedule(recipe_for(dataset="toy_flowers"), 1000)  # no warm-up: the peak at once
    assert float(flowers(0)) == pytest.approx(2e-3, rel=1e-4)
    with pytest.raises(ValueError, match="unet_warmup_steps"):
        unet_schedule(world, warmup)


def test_object_crops_centre_on_objects_and_stay_on_the_latent_grid():
    from imagegen.data import toy_flowers, toy_world
    from imagegen.stable_diffusion.mini_recipe import object_crops

    world = toy_world(200, 64, seed=3)
    crops = object_crops(world, 32, seed=0, multiple=4, centred=1.0)
    assert crops.shape == (200, 32, 32, 3)
    found = 0
    for image, crop, scene in zip(world.images, crops, world.scenes):
        corners = [(t, l) for t in range(0, 33, 4) for l in range(0, 33, 4)
                   if np.array_equal(image[t : t + 32, l : l + 32], crop)]
        assert corners, "every crop is a piece of its image, its corner on multiples of 4"
        t, l = corners[0]
        found += any(l <= (o["box"][0] + o["box"][2]) / 2 < l + 32 and t <= (o["box"][1] + o["box"][3]) / 2 < t + 32
                     for o in scene["objects"]) or not scene["objects"]
    assert found >= 190  # centred on an object (up to a jitter of 6 px)
    assert object_crops(toy_flowers(8, 64, seed=0), 32).shape == (8, 32, 32, 3)  # no scenes: anywhere
    with pytest.raises(ValueError, match="vae_crop"):
        object_crops(world, 80)


def test_latent_noise_reaches_the_decoder_only_in_training():
    encoder, decoder = Encoder(channels=(8,), groups=4, latent_scale=1.0), Decoder(channels=(8,), groups=4, latent_scale=1.0)
    images = RNG.uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    quiet = AutoencoderTrainer(encoder, decoder, kl_weight=1e-4, seed=0)
    noisy = AutoencoderTrainer(encoder, decoder, kl_weight=1e-4, seed=0, latent_noise=0.5)
    np.testing.assert_allclose(ops.convert_to_numpy(noisy(images)[1]), ops.convert_to_numpy(quiet(images)[1]), atol=1e-6)
    difference = ops.convert_to_numpy(noisy(images, training=True)[1]) - ops.convert_to_numpy(quiet(images, training=True)[1])
    assert np.abs(difference).max() > 1e-3
    assert AutoencoderTrainer.from_config(noisy.get_config()).latent_noise == 0.5


def test_save_and_load_mini_round_trip_in_float16(tmp_path, tiny):
    modules = (tiny.text_encoder, tiny.unet, tiny.decoder, tiny.image_encoder)
    mini_asset.save_mini(tmp_path, modules, {"note": "test"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mini.json", "mini.safetensors"]  # no temporary left
    text_encoder, unet, decoder, image_encoder = mini_asset.load_mini(tmp_path)
    assert json.loads((tmp_path / "mini.json").read_text())["record"] == {"note": "test"}
    mini_asset.update_record(tmp_path, prompt_accuracy={"color": 0.5})
    assert mini_asset.mini_record(tmp_path) == {"note": "test", "prompt_accuracy": {"color": 0.5}}
    assert mini_asset.mini_guidance(tmp_path) == 7.5  # none recorded: SD's
    mini_asset.update_record(tmp_path, guidance_scale=3)
    assert mini_asset.mini_guidance(tmp_path) == 3.0 and mini_asset.mini_guidance(tmp_path / "missing") == 7.5
    latents = RNG.normal(size=(1, 4, 4, 4)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(decoder(latents)), ops.convert_to_numpy(tiny.decoder(latents)), atol=2e-2)
    assert unet.get_config() == tiny.unet.get_config()
    with pytest.raises(FileNotFoundError, match="python -m imagegen.train mini"):
        mini_asset.load_mini(tmp_path / "missing")


def test_evaluate_prompts_scores_every_canonical_prompt_with_the_given_classifier():
    from imagegen.stable_diffusion.mini_eval import evaluate_prompts

    class Pipeline:  # stands in for a StableDiffusion: only text_to_image is called
        def text_to_image(self, prompt, batch_size, num_steps, unconditional_guidance_scale, seed):
            return np.zeros((batch_size, 8, 8, 3), "uint8")

    class Classifier:  # stands in for a trained ToyFlowerClassifier
        def accuracy(self, images, colors, petals):
            assert len(images) == len(colors) == len(petals) and images.max() <= 1.0
            return {"color": 0.25, "petals": 0.5}

    result = evaluate_prompts(Pipeline(), Classifier(), images_per_prompt=2, num_steps=3, held_out={"color": 1.0})
    assert result["num_images"] == 96 and result["images"].shape == (96, 8, 8, 3)  # 48 prompts x 2
    assert (result["color"], result["petals"], result["classifier_held_out"]) == (0.25, 0.5, {"color": 1.0})


# -- the shipped mini model ---------------------------------------------------------------------
@needs_mini
def test_mini_ships_small_and_loads_offline(mini_sd):
    assert (mini_asset.ASSET_DIR / "mini.safetensors").stat().st_size <= 30 * 2**20
    assert (mini_sd.img_height, mini_sd.img_width) == (64, 64)
    record = mini_asset.mini_record()
    assert record["recipe"]["image_size"] == 64 and record["train_seconds"] > 0


@needs_mini
def test_mini_follows_place_prompts(mini_sd):
    """The moon has a black sky, a field a blue one and green grass (notebook 07 measures prompts with the judge)."""
    moon = mini_sd.text_to_image("a cow on the moon", batch_size=4, num_steps=15, seed=0).astype(float)
    field = mini_sd.text_to_image("a cow in a field", batch_size=4, num_steps=15, seed=0).astype(float)
    sky = lambda images: images[:, :12].mean(axis=(1, 2, 3))  # noqa: E731  (the top rows' brightness, per image)
    grass = lambda images: (images[:, 48:, :, 1] - images[:, 48:, :, [0, 2]].mean(-1)).mean(axis=(1, 2))  # noqa: E731
    assert sky(moon).max() < 60 < 120 < sky(field).min()
    assert grass(field).min() > 20 > grass(moon).max()


@needs_mini
def test_mini_inpaint_keeps_the_unmasked_region(mini_sd):
    image = mini_sd.text_to_image("a red boat on a lake", num_steps=10, seed=1)[0]
    mask = np.zeros((64, 64), "float32")
    mask[16:48, 16:48] = 1
    out = mini_sd.inpaint("a cow on a beach", image, mask, num_steps=10, seed=2)[0]
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])
    assert np.abs(out[mask == 1].astype(float) - image[mask == 1]).mean() > 5  # the masked part did change
    raw = mini_sd.inpaint("a cow on a beach", image, mask, num_steps=10, seed=2, keep_unmasked=False)[0]
    ring = np.ones((64, 64), bool)
    ring[8:56, 8:56] = False  # more than one latent pixel away from the mask
    assert np.abs(raw[ring].astype(float) - image[ring]).mean() < 12  # latent masking alone keeps it close


# -- textual inversion, tiny --------------------------------------------------------------------
def test_textual_inversion_trains_only_the_new_row(tiny):
    from imagegen.clip import CLIPTokenizer
    from imagegen.stable_diffusion.textual_inversion import textual_inversion

    pipeline = StableDiffusion(tiny.text_encoder, tiny.unet, tiny.decoder, tiny.image_encoder,
                               CLIPTokenizer(max_length=16), img_height=32, img_width=32, jit_compile=False, progress=False)
    old_table = ops.convert_to_numpy(pipeline.text_encoder.token_embeddings).copy()
    unet_before = [w.copy() for w in tiny.unet.get_weights()]
    images = RNG.integers(0, 255, (3, 32, 32, 3)).astype("uint8")
    losses = textual_inversion(pipeline, images, "<thing>", "flower", ["a photo of a <thing>"], steps=10, batch_size=4,
                               log_every=0)
    assert len(losses) == 10
    table = ops.convert_to_numpy(pipeline.text_encoder.token_embeddings)
    new_id = pipeline.tokenizer.token_id("<thing>")
    assert table.shape[0] == old_table.shape[0] + 1 and new_id == old_table.shape[0]
    np.testing.assert_array_equal(table[:-1], old_table)
    flower = pipeline.tokenizer.encode("flower")[1]
    assert np.abs(table[-1] - old_table[flower]).max() > 0  # the new row moved from where it started
    assert all(np.array_equal(a, b) for a, b in zip(unet_before, tiny.unet.get_weights()))
    assert pipeline.tokenizer.encode("a <thing>")[2] == new_id
    pipeline.text_to_image("a <thing>", num_steps=2, seed=0)
    with pytest.raises(ValueError, match="already in the vocabulary"):
        textual_inversion(pipeline, images, "<thing>", "flower", ["a <thing>"], steps=1, log_every=0)
    with pytest.raises(ValueError, match="must use the new token"):
        textual_inversion(pipeline, images, "<other>", "flower", ["a photo"], steps=1, log_every=0)


# -- command line -------------------------------------------------------------------------------
@needs_mini
def test_cli_generate_img2img_inpaint(tmp_path, capsys):
    from PIL import Image

    from imagegen.cli import main

    out = tmp_path / "out.png"
    assert main(["generate", "an astronaut riding a horse", "--steps", "5", "--batch", "4", "-o", str(out)]) == 0
    assert Image.open(out).size == (256, 64)  # a grid of 4
    source = tmp_path / "in.png"
    Image.fromarray(RNG.integers(0, 255, (80, 100, 3)).astype("uint8")).save(source)  # resized and cropped to 64x64
    assert main(["img2img", "a red boat on a lake", "--image", str(source), "--strength", "0.5", "--steps", "4", "-o", str(out)]) == 0
    assert main(["inpaint", "a cat on the moon", "--image", str(source), "--box", "8,8,40,40", "--steps", "4", "-o", str(out)]) == 0
    assert Image.open(out).size == (64, 64)


@pytest.mark.parametrize("arguments, message", [
    (["generate", "x", "--height", "60"], "multiple of"),
    (["img2img", "x", "--image", "IMAGE", "--strength", "1.5"], "strength must be in (0, 1]"),
    (["inpaint", "x", "--image", "IMAGE", "--box", "8,8,4,4"], "--box"),
    (["inpaint", "x", "--image", "IMAGE", "--mask", "BLACK"], "no white pixels"),
    (["img2img", "x", "--image", "missing.png"], "no such file"),
    (["generate", "x", "-o", "out.gif"], ".png"),
])
@needs_mini
def test_cli_errors_name_the_problem(tmp_path, capsys, arguments, message):
    from PIL import Image

    from imagegen.cli import main

    Image.fromarray(np.zeros((64, 64, 3), "uint8")).save(tmp_path / "image.png")
    Image.fromarray(np.zeros((64, 64), "uint8")).save(tmp_path / "black.png")
    replace = {"IMAGE": str(tmp_path / "image.png"), "BLACK": str(tmp_path / "black.png"), "missing.png": str(tmp_path / "missing.png")}
    arguments = [replace.get(a, a) for a in arguments] + ["--steps", "2", "-o", str(tmp_path / "o.png")] * ("-o" not in arguments)
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_weights_fail_clearly(tmp_path, capsys):
    from imagegen.cli import main

    assert main(["generate", "x", "--diffusers", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o.png")]) == 3
    assert "weights are not available" in capsys.readouterr().err


# -- the live-demo panel ------------------------------------------------------------------------
@needs_mini
def test_demo_panel_generates_and_reports_a_missing_preset():
    from imagegen.demo import DemoPanel

    def broken():
        raise FileNotFoundError("no weights here")

    panel = DemoPanel(loaders={"mini": lambda: from_preset("mini", progress=False), "broken": broken})
    panel.steps.value, panel.batch.value = 3, 2
    images = panel.generate()
    assert images.shape == (2, 64, 64, 3) and panel.progress.value == 3
    assert np.array_equal(images, panel.generate())  # the same seed, the same pictures
    from imagegen.stable_diffusion.presets import default_guidance

    assert panel.guidance.value == default_guidance("mini") == mini_asset.mini_guidance()  # the mini's own guidance
    panel.guidance.value = 12.0
    panel.preset.value = "broken"  # another model: its own guidance (SD's 7.5 for weights of one's own)
    assert panel.guidance.value == 7.5
    assert panel.generate() is None and "not available" in panel.status.value and not panel.button.disabled


def test_demo_panel_shows_a_description_not_a_widget_repr(monkeypatch):
    """An executed copy keeps the panel's text/plain: it must say what the panel is, not ``VBox(children=...)``."""
    import IPython.display

    from imagegen.demo import DemoPanel

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **options: shown.append((objects, options)))
    DemoPanel(loaders={"mini": lambda: None}).show()
    (bundle,), options = shown[0]
    assert options == {"raw": True} and "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Demo panel") and "VBox" not in bundle["text/plain"]
