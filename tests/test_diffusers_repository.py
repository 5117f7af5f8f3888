"""Weights in diffusers form: which files are fetched, the schedule each repository brings, and parity with diffusers.

The end-to-end tests run diffusers' own ``StableDiffusionPipeline`` and ours on the
same tiny random folder (``diffusers_folder`` in conftest.py) from the same
prompt embeddings and starting latents.
"""

import json
import shutil

import numpy as np
import pytest

from imagegen.diffusion import DiscreteSchedule
from imagegen.stable_diffusion import StableDiffusion, from_diffusers
from imagegen.stable_diffusion.diffusers import SD15_SCHEDULER
from imagegen.stable_diffusion.repository import fetch, select_files

# SD 1.5's repository as the Hub lists it (stable-diffusion-v1-5/stable-diffusion-v1-5). The names are the
# repository's; the sizes are computed from each part's parameter count (4 bytes each, 2 in the .fp16 files;
# UNet 859,520,964, text encoder 123,060,480, VAE 83,653,863), which is what the files hold, headers aside.
UNET, TEXT, VAE = 859_520_964, 123_060_480, 83_653_863
SD15_LISTING = {
    ".gitattributes": 1_500, "README.md": 14_000, "model_index.json": 541, "v1-inference.yaml": 1_873,
    "v1-5-pruned-emaonly.ckpt": 4 * (UNET + TEXT + VAE), "v1-5-pruned-emaonly.safetensors": 4 * (UNET + TEXT + VAE),
    "v1-5-pruned.ckpt": 4 * (2 * UNET + TEXT + VAE), "v1-5-pruned.safetensors": 4 * (2 * UNET + TEXT + VAE),
    "feature_extractor/preprocessor_config.json": 342,
    "safety_checker/config.json": 4_723, "safety_checker/model.safetensors": 1_215_981_830,
    "safety_checker/model.fp16.safetensors": 607_990_915, "safety_checker/pytorch_model.bin": 1_216_064_769,
    "safety_checker/pytorch_model.fp16.bin": 608_103_564,
    "scheduler/scheduler_config.json": 308,
    "text_encoder/config.json": 617, "text_encoder/model.safetensors": 4 * TEXT, "text_encoder/model.fp16.safetensors": 2 * TEXT,
    "text_encoder/pytorch_model.bin": 4 * TEXT, "text_encoder/pytorch_model.fp16.bin": 2 * TEXT,
    "tokenizer/merges.txt": 524_619, "tokenizer/special_tokens_map.json": 472, "tokenizer/tokenizer_config.json": 806,
    "tokenizer/vocab.json": 1_059_962,
    "unet/config.json": 743, "unet/diffusion_pytorch_model.safetensors": 4 * UNET,
    "unet/diffusion_pytorch_model.fp16.safetensors": 2 * UNET, "unet/diffusion_pytorch_model.bin": 4 * UNET,
    "unet/diffusion_pytorch_model.fp16.bin": 2 * UNET, "unet/diffusion_pytorch_model.non_ema.bin": 4 * UNET,
    "unet/diffusion_pytorch_model.non_ema.safetensors": 4 * UNET,
    "vae/config.json": 547, "vae/diffusion_pytorch_model.safetensors": 4 * VAE, "vae/diffusion_pytorch_model.fp16.safetensors": 2 * VAE,
    "vae/diffusion_pytorch_model.bin": 4 * VAE, "vae/diffusion_pytorch_model.fp16.bin": 2 * VAE,
}


def test_sd15_listing_fetches_only_what_is_loaded():
    from huggingface_hub.utils import filter_repo_objects

    chosen = select_files(SD15_LISTING)
    assert chosen == ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/special_tokens_map.json",
                      "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                      "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                      "text_encoder/config.json", "text_encoder/model.safetensors"]
    total = sum(SD15_LISTING[name] for name in chosen)
    assert 4.26e9 < total < 4.27e9  # 4.26 GB of the 47 GB listed
    # The names, given to the Hub client as patterns, match exactly these files and nothing else.
    assert sorted(filter_repo_objects(SD15_LISTING, allow_patterns=chosen)) == sorted(chosen)
    # The patterns used before ("*.safetensors" and friends, where * crosses "/") fetched 19 GB more.
    old = list(filter_repo_objects(SD15_LISTING, allow_patterns=["*.json", "*.txt", "*.safetensors"],
                                   ignore_patterns=["*.fp16.*", "safety_checker/*"]))
    assert sum(SD15_LISTING[name] for name in old) > 4 * total
    half = select_files(SD15_LISTING, variant="fp16")
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in half
    assert 2.1e9 < sum(SD15_LISTING[name] for name in half) < 2.2e9


def test_fp16_only_repositories_and_refusals():
    fp16_only = {name: size for name, size in SD15_LISTING.items() if ".fp16." in name or name.endswith(".json")}
    assert "text_encoder/model.fp16.safetensors" in select_files(fp16_only)
    pickles = {name: size for name, size in SD15_LISTING.items() if not name.endswith(".safetensors")}
    with pytest.raises(FileNotFoundError, match="pickle files are never loaded"):
        select_files(pickles)
    with pytest.raises(ValueError, match="SDXL"):
        select_files({**SD15_LISTING, "text_encoder_2/config.json": 1})
    with pytest.raises(FileNotFoundError, match="from_single_file"):
        select_files({"v1-5-pruned-emaonly.safetensors": 1})
    with pytest.raises(ValueError, match="variant"):
        select_files(SD15_LISTING, variant="bf16")


def test_hub_download_asks_for_exactly_the_selected_files(monkeypatch, tmp_path):
    from imagegen import network
    from imagegen.stable_diffusion import repository

    asked = {}
    monkeypatch.setattr(network, "is_reachable", lambda url, timeout=3.0: True)
    monkeypatch.setattr(repository, "hub_listing", lambda repo, revision=None: SD15_LISTING)

    def snapshot_download(repo, revision=None, allow_patterns=None):
        asked.update(repo=repo, patterns=allow_patterns)
        return str(tmp_path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    root, files = fetch("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert asked == {"repo": "stable-diffusion-v1-5/stable-diffusion-v1-5", "patterns": files} and root == tmp_path


def test_offline_hub_repository_fails_fast(monkeypatch):
    from imagegen.network import OfflineError

    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    with pytest.raises(OfflineError, match="unreachable"):
        from_diffusers("someone/some-model")


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_schedule_plans_match_diffusers_ddim(spacing):
    diffusers = pytest.importorskip("diffusers")
    config = {**SD15_SCHEDULER, "timestep_spacing": spacing}
    schedule, prediction = DiscreteSchedule.from_diffusers(config)
    assert prediction == "epsilon"
    (one,) = schedule.plan(1)  # diffusers starts a one-step plan at timestep 0 or 1, which turns noise into noise
    assert one.timestep == 999 and one.a_next == pytest.approx(float(schedule.final_alpha_bar))
    for steps in (7, 25, 50):
        theirs = diffusers.DDIMScheduler(**config)
        theirs.set_timesteps(steps)
        plan = schedule.plan(steps)
        assert [t for t, _, _ in plan] == theirs.timesteps.tolist()
        for t, a_t, a_next in plan:
            previous = t - 1000 // steps
            expected = theirs.alphas_cumprod[previous] if previous >= 0 else theirs.final_alpha_cumprod
            assert abs(a_t - float(theirs.alphas_cumprod[t])) < 1e-6 and abs(a_next - float(expected)) < 1e-6


def test_schedule_config_refusals():
    for key in ("thresholding", "rescale_betas_zero_snr"):
        with pytest.raises(ValueError, match=key):
            DiscreteSchedule.from_diffusers({**SD15_SCHEDULER, key: True})
    with pytest.raises(ValueError, match="prediction_type"):
        DiscreteSchedule.from_diffusers({**SD15_SCHEDULER, "prediction_type": "sample"})


def _with_scheduler(folder, tmp_path, **changes):
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    path = copy / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return copy


def _compare_with_diffusers(ours, folder, models, prompt, steps, seed, label):
    """Our image and diffusers' StableDiffusionPipeline's on the folder's DDIM config, from the same prompt
    embeddings (ours) and starting latents; asserts a mean difference of at most 1/255."""
    _, unet, vae, text, torch = models
    diffusers = pytest.importorskip("diffusers")
    context, negative = np.asarray(ours.encode_text(prompt)), np.asarray(ours.encode_text(""))
    latents = np.random.default_rng(seed).normal(size=(1, 8, 8, 4)).astype("float32")
    mine = ours.generate_image(context, batch_size=1, num_steps=steps, unconditional_guidance_scale=7.5, diffusion_noise=latents)
    scheduler = diffusers.DDIMScheduler.from_pretrained(folder / "scheduler")
    pipeline = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=scheduler,
                                                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        theirs = pipeline(prompt_embeds=torch.from_numpy(context.copy()), negative_prompt_embeds=torch.from_numpy(negative.copy()),
                          latents=torch.from_numpy(latents.transpose(0, 3, 1, 2).copy()), height=16, width=16,
                          num_inference_steps=steps, guidance_scale=7.5, output_type="np").images
    difference = np.abs(mine.astype("float32") / 255.0 - theirs)
    print(f"{label}: mean |ours - diffusers| = {difference.mean() * 255:.3f}/255, max {difference.max() * 255:.2f}/255")
    assert difference.mean() <= 1 / 255, difference.mean()
    assert difference.max() <= 3 / 255, difference.max()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_same_image_as_diffusers_pipeline(diffusers_folder, tmp_path, prediction_type):
    folder = _with_scheduler(diffusers_folder[0], tmp_path, prediction_type=prediction_type)
    ours = from_diffusers(folder, img_height=16, img_width=16, jit_compile=False, progress=False)
    assert ours.unet.config["prediction"] == {"epsilon": "epsilon", "v_prediction": "v"}[prediction_type]
    _compare_with_diffusers(ours, folder, diffusers_folder, "an astronaut riding a horse", 6, 3, prediction_type)


def test_old_vae_attention_names_load(diffusers_folder, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder, *_ = diffusers_folder
    reference = from_diffusers(folder, img_height=16, img_width=16, jit_compile=False)
    old = _with_scheduler(folder, tmp_path)
    path = old / "vae" / "diffusion_pytorch_model.safetensors"
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    tensors = {}
    for name, value in load_file(str(path)).items():
        for new, before in renames.items():
            name = name.replace(new, before)
        tensors[name] = value
    assert any(".proj_attn." in name for name in tensors)
    save_file(tensors, str(path))
    loaded = from_diffusers(old, img_height=16, img_width=16, jit_compile=False)
    latents = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.decoder(latents)), np.asarray(reference.decoder(latents)), atol=1e-6)


def test_refuses_models_it_cannot_run(diffusers_folder, tmp_path):
    folder, *_ = diffusers_folder
    copy = _with_scheduler(folder, tmp_path)
    (copy / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(ValueError, match="SDXL"):
        from_diffusers(copy)
    (copy / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    config = json.loads((copy / "unet" / "config.json").read_text())
    for changes, reason in (({"in_channels": 9}, "inpainting"), ({"addition_embed_type": "text_time"}, "SDXL"),
                            ({"class_embed_type": "timestep"}, "upscaler")):
        (copy / "unet" / "config.json").write_text(json.dumps({**config, **changes}))
        with pytest.raises(ValueError, match=reason):
            from_diffusers(copy)


def test_v_prediction_config_is_honoured_with_a_v_trained_unet():
    """The shipped mini UNet predicts v. Sampled on SD 1.5's schedule with the config saying v_prediction,
    it draws what it draws on its own schedule; told "epsilon", it draws something else entirely."""
    from imagegen.stable_diffusion import UNet
    from imagegen.stable_diffusion.presets import load_preset

    text_encoder, unet, decoder, image_encoder = load_preset("mini")
    assert unet.config["prediction"] == "v"
    reference = StableDiffusion(text_encoder, unet, decoder, image_encoder, img_height=64, img_width=64, progress=False)
    prompts = ["a red boat on a lake", "a cow in a field", "an astronaut on the moon"]
    context = reference.encode_text(prompts)
    noise = np.random.default_rng(0).normal(size=(3, 16, 16, 4)).astype("float32")
    expected = reference.generate_image(context, batch_size=3, num_steps=25, diffusion_noise=noise).astype("float32")
    distances = {}
    for prediction_type in ("v_prediction", "epsilon"):
        schedule, prediction = DiscreteSchedule.from_diffusers({**SD15_SCHEDULER, "prediction_type": prediction_type})
        told = UNet(**{**unet.config, "prediction": prediction})  # as the loader builds it from the config
        told.set_weights(unet.get_weights())
        sd = StableDiffusion(text_encoder, told, decoder, image_encoder, img_height=64, img_width=64, progress=False,
                             schedule=schedule)
        images = sd.generate_image(context, batch_size=3, num_steps=25, diffusion_noise=noise)
        distances[prediction_type] = float(np.abs(images - expected).mean())
    assert distances["v_prediction"] < 8 < 30 < distances["epsilon"], distances  # measured: 0.94 and 39 (of 255)


@pytest.fixture(scope="module")
def sd2_folder(tmp_path_factory):
    """A tiny random model shaped like SD 2.x's 768-v: heads per level, linear projections, exact GELU in the
    text encoder, prompts padded with "!", and a scheduler config that says v_prediction."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("tiny-sd2")
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, upcast_attention=True)
    vae = diffusers.AutoencoderKL(block_out_channels=(16, 32), latent_channels=4, norm_num_groups=8, layers_per_block=2,
                                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, hidden_act="gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=0))
    with torch.no_grad():
        for module in (unet, vae, text):
            for parameter in module.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    diffusers.DDIMScheduler(**{**SD15_SCHEDULER, "prediction_type": "v_prediction", "timestep_spacing": "trailing"}
                            ).save_pretrained(folder / "scheduler")
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "unk_token": "<|endoftext|>"}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder, unet.eval(), vae.eval(), text.eval(), torch


def test_sd2_shaped_model_draws_what_diffusers_draws(sd2_folder):
    folder, unet, vae, text, torch = sd2_folder
    ours = from_diffusers(folder, jit_compile=False, progress=False)
    assert (ours.img_height, ours.unet.config["prediction"], ours.unet.config["num_heads"]) == (16, "v", (2, 4))
    ids = ours.tokenizer(["a red flower"])
    assert ids[0, 4] == 49407 and (ids[0, 5:] == 0).all()  # padded with "!", as SD 2.x's tokenizer does
    with torch.no_grad():
        their_text = text(torch.from_numpy(ids.astype("int64"))).last_hidden_state.numpy()
    assert np.max(np.abs(np.asarray(ours.encode_text("a red flower")) - their_text)) <= 1e-4
    _compare_with_diffusers(ours, folder, sd2_folder, "a red flower", 5, 5, "SD 2.x-shaped")
