"""SD v1 single-file checkpoints (original CompVis names): parity with diffusers' own single-file loader, and refusals.

The random checkpoints are written here from tiny diffusers/transformers models, renamed to the original
layout by an inverse mapping of the test's own (diffusers name -> original name). That mapping is checked
independently: diffusers' ``from_single_file`` must read every tensor back to the model it came from.
"""

import contextlib
import io
import json
import re

import numpy as np
import pytest
from keras import ops

from imagegen.stable_diffusion.single_file import load_single_file

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
           "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
BUFFERS = {"alphas_cumprod": np.linspace(1, 0, 10, dtype="float32"), "betas": np.zeros(10, "float32"),
           "model_ema.decay": np.array(0.9999, "float32"), "model_ema.num_updates": np.array(7, "int32")}


# -- the inverse mapping: diffusers names -> original CompVis names ------------------------------------
def original_unet_name(name, per_level, up_attention):
    p = name.split(".")
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2", "conv_in": "input_blocks.0.0",
             "conv_norm_out": "out.0", "conv_out": "out.2"}
    if ".".join(p[:-1]) in fixed:
        return f"{fixed['.'.join(p[:-1])]}.{p[-1]}"
    resnet = lambda rest: f"{_RESNET[rest[0]]}.{rest[1]}"  # noqa: E731
    if p[0] == "mid_block":
        return "middle_block.1." + ".".join(p[3:]) if p[1] == "attentions" else f"middle_block.{2 * int(p[2])}.{resnet(p[3:])}"
    level, kind = int(p[1]), p[2]
    if kind == "downsamplers":
        return f"input_blocks.{level * per_level + per_level}.0.op.{p[-1]}"
    if kind == "upsamplers":
        return f"output_blocks.{level * per_level + per_level - 1}.{2 if up_attention[level] else 1}.conv.{p[-1]}"
    index = (1 + level * per_level if p[0] == "down_blocks" else level * per_level) + int(p[3])
    side = "input_blocks" if p[0] == "down_blocks" else "output_blocks"
    return f"{side}.{index}.0.{resnet(p[4:])}" if kind == "resnets" else f"{side}.{index}.1." + ".".join(p[4:])


def original_vae_name(name, levels):
    name = name.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    name = name.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    if m := re.fullmatch(r"(\w+)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(\w+)", name):
        return f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}"
    name = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", name)
    name = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", name)
    name = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.", name)
    return re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.", name)


def original_tensors(unet, vae, text, ema_unet=None, text_model_prefix=True):
    """{original name: numpy array} of a full SD v1 checkpoint made of these models (plus buffers it carries)."""
    per_level = unet.config.layers_per_block + 1
    up_attention = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    levels = len(vae.config.block_out_channels)
    array = lambda t: t.detach().numpy().copy()  # noqa: E731
    out = dict(BUFFERS)
    for name, value in unet.state_dict().items():
        out["model.diffusion_model." + original_unet_name(name, per_level, up_attention)] = array(value)
    if ema_unet is not None:  # model_ema.<the UNet name without "model." and without dots>
        for name, value in ema_unet.state_dict().items():
            out["model_ema.diffusion_model" + original_unet_name(name, per_level, up_attention).replace(".", "")] = array(value)
    for name, value in vae.state_dict().items():
        value = array(value)
        if ".mid_block.attentions." in name and value.ndim == 2:  # the original's attention projections are 1x1 convs
            value = value[:, :, None, None]
        out["first_stage_model." + original_vae_name(name, levels)] = value
    prefix = "cond_stage_model.transformer." + ("text_model." if text_model_prefix else "")
    for name, value in text.state_dict().items():
        out[prefix + name.removeprefix("text_model.")] = array(value)
    out[prefix + "embeddings.position_ids"] = np.arange(text.config.max_position_embeddings, dtype="int64")[None]
    return out


def write_checkpoint(path, tensors):
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return path


def config_folder(root, unet, vae, text, diffusers):
    """A diffusers pipeline folder with configs only: what ``from_single_file(config=...)`` reads, offline."""
    root.mkdir()
    unet.save_config(root / "unet")
    vae.save_config(root / "vae")
    text.config.save_pretrained(root / "text_encoder")
    diffusers.DDIMScheduler(steps_offset=1, clip_sample=False).save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__, "requires_safety_checker": False,
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "scheduler": ["diffusers", "DDIMScheduler"],
        "tokenizer": [None, None], "safety_checker": [None, None], "feature_extractor": [None, None]}))
    return root


def diffusers_pipeline(path, config, diffusers, **kwargs):
    return diffusers.StableDiffusionPipeline.from_single_file(
        str(path), config=str(config), local_files_only=True, tokenizer=None, safety_checker=None, feature_extractor=None, **kwargs)


def assert_same_weights(theirs, reference):
    """diffusers read every tensor of our file back into place: the test's inverse mapping is right."""
    ours = theirs.state_dict()
    for name, value in reference.state_dict().items():
        assert name in ours and np.array_equal(ours[name].numpy(), value.numpy()), name


def run(model, inputs):
    """Our model's output as numpy; one compiled call under JAX, where eager op-by-op dispatch is much slower."""
    import keras

    return model.predict_on_batch(inputs) if keras.backend.backend() == "jax" else ops.convert_to_numpy(model(inputs))


def assert_parity(modules, unet, vae, text, torch, size=16, latent_size=8, text_length=16, vocab=49408):
    text_encoder, ours_unet, decoder, image_encoder = modules
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(2, latent_size, latent_size, 4)).astype("float32")
    context = rng.normal(size=(2, text_length, unet.config.cross_attention_dim)).astype("float32")
    timesteps = np.array([10.0, 700.0], "float32")
    images = rng.uniform(-1, 1, size=(2, size, size, 3)).astype("float32")
    ids = rng.integers(0, vocab, size=(2, text_length)).astype("int32")
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    nhwc = lambda t: t.detach().numpy().transpose(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        their_noise = nhwc(unet(nchw(latents), torch.from_numpy(timesteps), encoder_hidden_states=torch.from_numpy(context)).sample)
        their_mean = nhwc(vae.encode(nchw(images)).latent_dist.mean) * 0.18215
        their_decoded = nhwc(vae.decode(nchw(latents) / 0.18215).sample)
        their_text = text(torch.from_numpy(ids.astype("int64"))).last_hidden_state.numpy()
    diff = lambda ours, theirs: float(np.max(np.abs(ours - theirs)))  # noqa: E731
    assert diff(run(ours_unet, [latents, timesteps, context]), their_noise) <= 1e-4
    assert diff(run(image_encoder, images), their_mean) <= 1e-4
    assert diff(run(decoder, latents), their_decoded) <= 1e-4
    assert diff(run(text_encoder, ids), their_text) <= 1e-4


# -- a deeper tiny SD: 3 levels, 2 layers per block, attention on (True, True, False) like SD's last three levels ----
@pytest.fixture(scope="module")
def deep_models():
    torch = pytest.importorskip("torch", reason="the diffusers parity tests need the torch test extra (requirements-torch.txt)")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    unet_kwargs = dict(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8)
    unet, ema_unet = diffusers.UNet2DConditionModel(**unet_kwargs), diffusers.UNet2DConditionModel(**unet_kwargs)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(16, 32, 32), latent_channels=4, norm_num_groups=8, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=1000, hidden_size=24, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=8, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1))
    with torch.no_grad():  # random non-zero weights everywhere (diffusers zero-initialises some outputs)
        for module in (unet, ema_unet, vae, text):
            for parameter in module.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    return unet.eval(), ema_unet.eval(), vae.eval(), text.eval(), torch, diffusers


@pytest.fixture(scope="module")
def deep_file(deep_models, tmp_path_factory):
    """A "full" checkpoint of the deep models (EMA copies under model_ema.*), and our modules read from it with ema=True."""
    unet, ema_unet, vae, text, torch, diffusers = deep_models
    tensors = original_tensors(unet, vae, text, ema_unet=ema_unet)
    assert {"model.diffusion_model.output_blocks.2.1.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight",
            "first_stage_model.decoder.up.2.upsample.conv.weight"} <= set(tensors)  # both upsample indices, reversed up.L
    folder = tmp_path_factory.mktemp("deep-sd")
    path = write_checkpoint(folder / "full.safetensors", tensors)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        modules = load_single_file(path, unet_heads=4, text_heads=4, groups=8)
    return path, config_folder(folder / "config", unet, vae, text, diffusers), modules, printed.getvalue()


# -- parity with diffusers' own single-file loader ---------------------------------------------------
def test_single_file_matches_diffusers(diffusers_folder, tmp_path):
    """The shared tiny SD (2 levels, 1 layer per block, attention on the first), in an "emaonly"-style file."""
    _, unet, vae, text, torch = diffusers_folder
    diffusers = pytest.importorskip("diffusers")
    path = write_checkpoint(tmp_path / "tiny.safetensors", original_tensors(unet, vae, text))
    pipe = diffusers_pipeline(path, config_folder(tmp_path / "config", unet, vae, text, diffusers), diffusers)
    for theirs, reference in ((pipe.unet, unet), (pipe.vae, vae), (pipe.text_encoder, text)):
        assert_same_weights(theirs, reference)
    modules = load_single_file(path, unet_heads=2, text_heads=2, groups=8)
    assert_parity(modules, pipe.unet, pipe.vae, pipe.text_encoder, torch)


def test_single_file_deep_unet_with_ema_matches_diffusers(deep_models, deep_file):
    """3 levels, 2 layers per block: upsamplers at output_blocks.N.1 and .N.2, the decoder's reversed up.L, EMA weights."""
    unet, ema_unet, vae, text, torch, diffusers = deep_models
    path, config, modules, printed = deep_file
    pipe = diffusers_pipeline(path, config, diffusers, extract_ema=True)
    for theirs, reference in ((pipe.unet, ema_unet), (pipe.vae, vae), (pipe.text_encoder, text)):
        assert_same_weights(theirs, reference)
    assert "using the EMA ones" in printed
    assert_parity(modules, pipe.unet, pipe.vae, pipe.text_encoder, torch, text_length=8, vocab=1000)


def test_single_file_ema_false_reads_the_raw_unet(deep_models, deep_file, tmp_path, capsys):
    """ema=False: the non-EMA model.diffusion_model.* weights, as diffusers without extract_ema; text keys without text_model."""
    unet, ema_unet, vae, text, torch, diffusers = deep_models
    path = write_checkpoint(tmp_path / "full.safetensors", original_tensors(unet, vae, text, ema_unet=ema_unet, text_model_prefix=False))
    raw = diffusers.UNet2DConditionModel.from_single_file(str(path), config=str(deep_file[1]), subfolder="unet",
                                                          local_files_only=True, extract_ema=False)
    assert_same_weights(raw, unet)
    text_encoder, ours, _, _ = load_single_file(path, ema=False, unet_heads=4, text_heads=4, groups=8)
    assert "using the non-EMA ones (ema=False)" in capsys.readouterr().out
    rng = np.random.default_rng(2)
    latents, context = rng.normal(size=(1, 8, 8, 4)).astype("float32"), rng.normal(size=(1, 8, 24)).astype("float32")
    ids, timesteps = rng.integers(0, 1000, size=(1, 8)).astype("int32"), np.array([500.0], "float32")
    with torch.no_grad():
        theirs = raw(torch.from_numpy(latents.transpose(0, 3, 1, 2).copy()), torch.from_numpy(timesteps),
                     encoder_hidden_states=torch.from_numpy(context)).sample.numpy().transpose(0, 2, 3, 1)
        their_text = text(torch.from_numpy(ids.astype("int64"))).last_hidden_state.numpy()
    mine = run(ours, [latents, timesteps, context])
    assert np.max(np.abs(mine - theirs)) <= 1e-4
    kernel = lambda unet: ops.convert_to_numpy(unet.get_layer("conv_out").kernel)  # noqa: E731
    assert np.max(np.abs(kernel(deep_file[2][1]) - kernel(ours))) > 1e-3  # the EMA UNet (ema=True) has other weights
    assert np.max(np.abs(run(text_encoder, ids) - their_text)) <= 1e-4


def test_single_file_dtype_policy(diffusers_folder, tmp_path):
    import keras

    _, unet, vae, text, _ = diffusers_folder
    path = write_checkpoint(tmp_path / "tiny.safetensors", original_tensors(unet, vae, text))
    before = keras.config.dtype_policy().name
    text_encoder, ours, decoder, image_encoder = load_single_file(path, unet_heads=2, text_heads=2, groups=8, dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == before
    assert ours.get_layer("conv_in").dtype_policy.name == text_encoder.get_layer("final_layer_norm").dtype_policy.name == "mixed_bfloat16"
    assert decoder.get_layer("conv_in").dtype_policy.name == image_encoder.get_layer("conv_in").dtype_policy.name == "float32"


# -- refusals -----------------------------------------------------------------------------------------
def test_pickle_checkpoints_are_refused_with_a_conversion_command(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    ckpt = tmp_path / "model.ckpt"
    weight = torch.randn(3, 4)  # a Lightning-style file: a "state_dict", a view sharing storage (.contiguous() alone fails), an int
    torch.save({"state_dict": {"a.weight": weight, "a.row": weight[0], "step": 3}, "global_step": 10}, ckpt)
    for suffix in (".ckpt", ".pt", ".pth", ".bin"):  # refused by name, before anything is read
        with pytest.raises(ValueError, match="pickle files can run code"):
            load_single_file(tmp_path / f"model{suffix}")
    with pytest.raises(ValueError, match="safetensors") as error:
        load_single_file(ckpt)
    command = re.search(r'python -c "(.*)"$', str(error.value))[1]
    exec(command, {})  # the conversion the message proposes, run on the torch-saved file
    from safetensors.numpy import load_file

    converted = load_file(str(tmp_path / "model.safetensors"))
    assert set(converted) == {"a.weight", "a.row"}
    np.testing.assert_array_equal(converted["a.row"], weight[0].numpy())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        load_single_file(tmp_path / "nothere.safetensors")


@pytest.mark.parametrize("keys, message", [
    (["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
      "model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight"], "SDXL"),
    (["cond_stage_model.model.token_embedding.weight", "model.diffusion_model.input_blocks.0.0.weight",
      "first_stage_model.decoder.conv_in.weight"], "SD 2.x"),
    (["encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight"], "VAE-only file"),
    (["first_stage_model.encoder.conv_in.weight", "first_stage_model.decoder.conv_in.weight"],
     r"lacks the UNet \(model.diffusion_model.\*\) and the CLIP text encoder"),
    (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"], "LoRA"),
    (["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight",
      "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"], "lacks 'out.2.weight', which every SD v1.x"),
])
def test_other_checkpoints_are_refused(tmp_path, keys, message):
    path = write_checkpoint(tmp_path / "other.safetensors", {key: np.zeros((2, 2), "float32") for key in keys})
    with pytest.raises(ValueError, match=message) as error:
        load_single_file(path)
    assert "\n" not in str(error.value)  # one line
