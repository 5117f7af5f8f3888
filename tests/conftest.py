"""Shared test settings: quick mode, no windows, a private cache, never the real network."""

import os

# Before anything imports Keras or matplotlib (notebook kernels inherit these too).
os.environ.setdefault("IMAGEGEN_MODE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each unit test gets its own cache, figures and tfds folders."""
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMAGEGEN_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    return tmp_path / "cache"


# -- tiny random diffusers/transformers models (PyTorch on the CPU), shared by the parity tests ----
@pytest.fixture(scope="session")
def diffusers_folder(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="the diffusers parity tests need the torch test extra (requirements-torch.txt)")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-sd")
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4, norm_num_groups=8, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    with torch.no_grad():  # random non-zero weights everywhere (diffusers zero-initialises some outputs)
        for module in (unet, vae, text):
            for parameter in module.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    from imagegen.stable_diffusion.diffusers import SD15_SCHEDULER

    diffusers.DDIMScheduler(**SD15_SCHEDULER).save_pretrained(folder / "scheduler")  # SD 1.5's published settings
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    return folder, unet.eval(), vae.eval(), text.eval(), torch
