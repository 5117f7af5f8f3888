"""The reference device_check.py times beside ours: diffusers' StableDiffusionPipeline on PyTorch, random weights.

Built as our random-weight pipeline is: UNet2DConditionModel, AutoencoderKL and CLIPTextModel in SD v1's
configuration (the dry run: our "tiny" config's shapes, as tests/conftest.py's ``diffusers_folder``), DDIMScheduler
with SD 1.5's settings and DPMSolverMultistepScheduler (dpmsolver++, order 2) from the same config. No tokenizer
(it would need CLIP's vocabulary files): the timed call runs the text encoder on fixed token ids, the prompt's and
the empty prompt's, and passes ``prompt_embeds``/``negative_prompt_embeds`` with ``num_images_per_prompt=batch``,
which is what the pipeline does after tokenizing; ``output_type="np"`` copies the decoded images to the host.

Precision: the whole pipeline in the row's dtype, VAE included, as ``torch_dtype=torch.float16`` gives (ours
mixed_bfloat16 keeps its VAE in float32). Otherwise PyTorch's and diffusers' defaults: eager, SDPA attention,
cuDNN's TF32 convolutions, float32 matmuls at "highest" precision (all in the facts). A call ends with
``torch.cuda.synchronize()``; the peak is ``torch.cuda.max_memory_allocated()`` after
``reset_peak_memory_stats()`` at the start of each row. The dry run keeps to one CPU thread: two threads on 2
shared cores spin against each other (a tiny call 0.2 s -> 2.4 s).
"""

from __future__ import annotations

import gc
import warnings

from device_check import GUIDANCE
from device_record import Bench, Unavailable, row_shape

# imagegen.stable_diffusion.diffusers.SD15_SCHEDULER, copied: importing imagegen would import Keras and JAX here
# (tests/test_device_check.py checks that the two agree).
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
                      prediction_type="epsilon")
CONFIGS = {
    "sd-v1": dict(  # runwayml/stable-diffusion-v1-5's config.json files; CLIP ViT-L/14's text tower
        unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
                  attention_head_dim=8, norm_num_groups=32),
        vae=dict(sample_size=512, block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  max_position_embeddings=77)),
    "tiny": dict(  # imagegen's "tiny": UNet (32, 64), attention on the first level; VAE (16, 32); text 32 wide
        unet=dict(sample_size=32, block_out_channels=(32, 64), layers_per_block=1,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=2,
                  norm_num_groups=8),
        vae=dict(sample_size=64, block_out_channels=(16, 32), layers_per_block=2, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
        text=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                  max_position_embeddings=16)),
}
BOS, EOS = 49406, 49407
PROMPT_IDS = [320, 8853, 539, 550, 18376, 6765, 3432, 320, 4558]  # nine tokens, about what the prompt has


def _token_ids(torch, length, device):
    """The prompt's and the empty prompt's ids, padded with EOS to the text encoder's length: (2, length)."""
    rows = [[BOS] + PROMPT_IDS + [EOS], [BOS, EOS]]
    return torch.tensor([row + [EOS] * (length - len(row)) for row in rows], device=device)


def _facts(torch, device):
    import diffusers
    import huggingface_hub
    import transformers

    cuda = device == "cuda"
    facts = dict(framework="torch", device_platform="gpu" if cuda else "cpu", torch=torch.__version__,
                 torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if cuda else None,
                 diffusers=diffusers.__version__, transformers=transformers.__version__,
                 huggingface_hub=huggingface_hub.__version__, torch_num_threads=torch.get_num_threads(),
                 cudnn_benchmark=torch.backends.cudnn.benchmark,
                 float32_matmul_precision=torch.get_float32_matmul_precision())
    with warnings.catch_warnings():  # the allow_tf32 flags are deprecated in favour of fp32_precision
        warnings.simplefilter("ignore")
        facts.update(cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                     cudnn_allow_tf32=torch.backends.cudnn.allow_tf32)
    if cuda:
        properties = torch.cuda.get_device_properties(0)
        facts.update(device_kind=properties.name, device_memory_bytes_limit=properties.total_memory,
                     device_count=torch.cuda.device_count())
    return facts


def load(dry_run, allow_cpu):
    """(facts, build(setup, dtype) -> Bench); raises Unavailable where torch, diffusers or a GPU is missing."""
    try:
        import diffusers
        import torch
        import transformers
    except Exception as error:  # noqa: BLE001 - the reason is the result
        raise Unavailable(f"{type(error).__name__}: {error} (diffusers travels as a wheel, benchmarks/wheels.txt; "
                          "torch and transformers must be installed)") from error
    device = "cpu" if dry_run or not torch.cuda.is_available() else "cuda"
    if not dry_run and device == "cpu" and not allow_cpu:
        raise Unavailable("no GPU: torch.cuda.is_available() is False (pass --allow-cpu to time SD v1 at 512x512 "
                          "on the CPU anyway)", _facts(torch, device))
    if dry_run:
        torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()  # "modules that should be kept in float32: []" on every .to()
    transformers.utils.logging.set_verbosity_error()
    cuda = device == "cuda"

    def peak():
        if not cuda:
            return None, "no GPU: torch runs on the CPU"
        return int(torch.cuda.max_memory_allocated()), None

    def build(setup, dtype):
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()  # the previous precision's pipeline
        config = CONFIGS[setup["config"]]
        torch.manual_seed(0)
        with torch.device(device):  # random initialisation on the GPU: seconds, not a minute on the CPU
            unet = diffusers.UNet2DConditionModel(**config["unet"])
            vae = diffusers.AutoencoderKL(**config["vae"])
            text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
                vocab_size=49408, hidden_act="quick_gelu", bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS,
                **config["text"]))
        for module in (unet, vae, text):
            module.to(dtype=getattr(torch, dtype)).eval()
        ddim = diffusers.DDIMScheduler(**SD15_SCHEDULER)
        schedulers = {"ddim": ddim, "dpm++2m": diffusers.DPMSolverMultistepScheduler.from_config(
            ddim.config, algorithm_type="dpmsolver++", solver_order=2)}
        pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=ddim,
                                                 safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        ids = _token_ids(torch, config["text"]["max_position_embeddings"], device)
        _, size, _ = row_shape(setup, "diffusers")

        def caller(scheduler, batch):
            pipe.scheduler = schedulers[scheduler]

            def call(steps):
                with torch.inference_mode():
                    embeddings = text(ids)[0]
                    images = pipe(prompt_embeds=embeddings[:1], negative_prompt_embeds=embeddings[1:],
                                  num_images_per_prompt=batch, height=size, width=size, num_inference_steps=steps,
                                  guidance_scale=GUIDANCE, output_type="np",
                                  generator=torch.Generator(device).manual_seed(0)).images
                if cuda:
                    torch.cuda.synchronize()
                return images

            return call

        attention = sorted({type(p).__name__ for p in unet.attn_processors.values()})
        return Bench(caller, list(schedulers), "float32", peak,
                     reset_peak=torch.cuda.reset_peak_memory_stats if cuda else (lambda: None),
                     peak_scope="this row's own: torch.cuda.reset_peak_memory_stats before its first warm-up call, "
                                "max_memory_allocated after its timed calls (weights and live tensors)",
                     facts=dict(attention_processors=attention, parameters=sum(
                         p.numel() for m in (unet, vae, text) for p in m.parameters())))

    return _facts(torch, device), build
