"""The Stable Diffusion pipeline: prompt -> tokens -> text features -> denoised latent -> image.

    context  = text_encoder(tokenize(prompt))                       (b, 77, 768)
    x_T      ~ N(0, I)                                              (b, h/8, w/8, 4)
    for t in timesteps (noisy -> clean):
        e_c, e_u = unet([x_t, x_t], t, [context, negative])        one call, doubled batch
        e        = e_u + s (e_c - e_u)                              classifier-free guidance
        (a v-predicting UNet: the same guidance on v, then e = sqrt(1 - a_t) x_t + sqrt(a_t) v)
        x_t      = scheduler.step(x_t, e)                           DDIM or DPM-Solver++
    image    = decoder(x_0)                                         (b, h, w, 3) in [-1, 1]

The public methods carry KerasCV's names and arguments (``text_to_image``,
``encode_text``, ``generate_image``) and add ``image_to_image`` and
``inpaint``. All return uint8 arrays (batch, height, width, 3). The guided
UNet call and the decoder are compiled (XLA with TensorFlow, ``jax.jit`` with
JAX); the schedulers' few elementwise updates run around them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imagegen import rehearsal
from imagegen.clip import CLIPTokenizer
from imagegen.diffusion.sampler import classifier_free_guidance
from imagegen.stable_diffusion.compiled import compile_function
from imagegen.stable_diffusion.inputs import as_images, as_mask, expand
from imagegen.stable_diffusion.schedulers import SD15_SCHEDULER, SamplingSchedule, add_noise, get_scheduler


class StableDiffusion:
    """Text-to-image, image-to-image and inpainting with a text encoder, a UNet and a VAE.

    text_encoder: ``imagegen.clip.TextEncoder`` (token ids -> features).
    unet: ``imagegen.stable_diffusion.UNet``.
    decoder: ``Decoder`` (latent -> image); image_encoder: ``ImageEncoder`` (needed by
        image_to_image and inpaint).
    tokenizer: a ``CLIPTokenizer`` whose max_length matches the text encoder.
    img_height, img_width: output size in pixels, fixed at construction.
    scheduler: "ddim" (KerasCV's sampler, default) or "dpm++2m" (fewer steps).
    schedule: the ``SamplingSchedule`` the weights came with (default KerasCV's);
        ``from_diffusers`` and ``from_single_file`` pass their source's own.
    jit_compile: compile the guided UNet call and the decoder.
    progress: show a progress bar over the denoising steps.
    """

    def __init__(self, text_encoder, unet, decoder, image_encoder=None, tokenizer=None, img_height=512, img_width=512,
                 scheduler="ddim", schedule=None, jit_compile=True, progress=True):
        self.text_encoder, self.unet, self.decoder, self.image_encoder = text_encoder, unet, decoder, image_encoder
        self.tokenizer = tokenizer or CLIPTokenizer(max_length=text_encoder.max_length)
        self.pixels_per_latent = decoder.downsampling
        multiple = self.pixels_per_latent * unet.downsampling
        for name, size in (("img_height", img_height), ("img_width", img_width)):
            if int(size) != size or size <= 0 or size % multiple:
                raise ValueError(f"{name}={size} must be a positive multiple of {multiple} (the VAE shrinks by "
                                 f"{self.pixels_per_latent}, the UNet by {unet.downsampling}); try "
                                 f"{max(multiple, int(round(size / multiple)) * multiple)}")
        self.img_height, self.img_width = int(img_height), int(img_width)
        self.latent_shape = (self.img_height // self.pixels_per_latent, self.img_width // self.pixels_per_latent,
                             unet.config["latent_channels"])
        self.prediction = unet.config.get("prediction", "epsilon")  # what the UNet outputs: noise or v
        self.scheduler = get_scheduler(scheduler, schedule)
        self.jit_compile, self.progress = jit_compile, progress
        self._unet_call = compile_function(unet, jit_compile)
        self._decode = compile_function(decoder, jit_compile)
        self._encode_image = compile_function(image_encoder, jit_compile) if image_encoder is not None else None
        self._unconditional = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset, img_height=None, img_width=None, dtype=None, **kwargs):
        """Pretrained weights by name: "sd-v1.4" (KerasCV's files, downloaded once and sha256-checked)
        or "mini" (the course's small model, shipped with the package, 64x64).

        img_height, img_width: default to the size the preset was trained at (512 or 64).

        dtype: "mixed_float16" (GPU) or "mixed_bfloat16" (TPU) runs the text encoder and
        UNet in half precision; the VAE and the sampler stay float32.
        """
        from imagegen.stable_diffusion.presets import DEFAULT_SIZES, load_preset

        text_encoder, unet, decoder, image_encoder = load_preset(preset, dtype)
        size = rehearsal.image_size(DEFAULT_SIZES[preset])
        return cls(text_encoder, unet, decoder, image_encoder, img_height=img_height or size, img_width=img_width or size,
                   **kwargs)

    @classmethod
    def from_config_name(cls, config="sd-v1", img_height=512, img_width=512, dtype=None, **kwargs):
        """Randomly initialised modules of a named size ("sd-v1", "tiny"): the architecture without training."""
        from imagegen.stable_diffusion.presets import build

        return cls(*build(config, dtype), img_height=img_height, img_width=img_width, **kwargs)

    @classmethod
    def from_keras_cv(cls, text_encoder, diffusion_model, decoder, image_encoder=None, **kwargs):
        """Copy KerasCV's SD v1 sub-models into ours; the size defaults to the decoder's."""
        from imagegen.stable_diffusion.presets import from_keras_cv

        kwargs.setdefault("img_height", decoder.input_shape[1] * 8)
        kwargs.setdefault("img_width", decoder.input_shape[2] * 8)
        return cls(*from_keras_cv(text_encoder, diffusion_model, decoder, image_encoder), **kwargs)

    @classmethod
    def from_diffusers(cls, path_or_repo, img_height=None, img_width=None, dtype=None, variant=None, **kwargs):
        """SD v1 or SD 2.x weights in diffusers format: a local folder or a Hugging Face repo id.

        Reads safetensors only and downloads only the files it loads (``variant="fp16"``
        prefers the half-size files). The folder's ``scheduler_config.json`` sets the
        sampling schedule and what the UNet predicts (epsilon or v).
        img_height, img_width: default to the UNet's ``sample_size`` x 8 (512 for SD v1, 768 for SD 2.x's 768-v).
        """
        from imagegen.stable_diffusion.repository import load_diffusers

        loaded = load_diffusers(path_or_repo, dtype=dtype, variant=variant)
        size = rehearsal.image_size(loaded.image_size)
        return cls(*loaded.modules, tokenizer=kwargs.pop("tokenizer", loaded.tokenizer), img_height=img_height or size,
                   img_width=img_width or size, schedule=kwargs.pop("schedule", loaded.schedule), **kwargs)

    @classmethod
    def from_single_file(cls, path, img_height=512, img_width=512, dtype=None, ema=True, **kwargs):
        """An SD v1.x checkpoint in one ``.safetensors`` file, in the original (CompVis) layout.

        ``v1-5-pruned-emaonly.safetensors`` and most fine-tunes shared as one file.
        ema: use the EMA UNet weights where the file has both. Sampled on SD 1.5's
        published schedule (diffusers' "leading" spacing, steps_offset 1).
        """
        from imagegen.stable_diffusion.single_file import load_single_file

        schedule, _ = SamplingSchedule.from_diffusers(SD15_SCHEDULER)
        return cls(*load_single_file(path, ema=ema, dtype=dtype), img_height=img_height, img_width=img_width,
                   schedule=kwargs.pop("schedule", schedule), **kwargs)

    def set_text_encoder(self, text_encoder):
        """Swap in another text encoder (e.g. one that learned a new token); forgets the cached empty prompt."""
        if text_encoder.max_length != self.text_encoder.max_length or text_encoder.width != self.text_encoder.width:
            raise ValueError("the new text encoder must have the same max_length and width as the old one")
        self.text_encoder, self._unconditional = text_encoder, None

    # -- text ------------------------------------------------------------------------------------
    def encode_text(self, prompt):
        """Prompt(s) -> text features float32 (n, 77, 768); a long prompt warns and is truncated."""
        ids = self.tokenizer(prompt)
        return ops.cast(self.text_encoder(ops.convert_to_tensor(ids), training=False), "float32")

    def _unconditional_context(self):
        """The empty prompt's features, computed once (KerasCV recomputes them every call)."""
        if self._unconditional is None:
            self._unconditional = self.encode_text("")
        return self._unconditional

    def _context_pair(self, encoded_text, negative_prompt, batch_size):
        context = expand(encoded_text, batch_size, "encoded_text")
        negative = self._unconditional_context() if negative_prompt is None else self.encode_text(negative_prompt)
        return context, expand(negative, batch_size, "negative_prompt")

    # -- sampling --------------------------------------------------------------------------------
    def guided_noise(self, latents, timestep, context, negative_context, guidance_scale):
        """e_u + s (e_c - e_u) from ONE UNet call on [latents, latents] with [context, negative]."""
        batch = ops.shape(latents)[0]
        timesteps = ops.full((2 * batch,), float(timestep), dtype="float32")
        both = self._unet_call(ops.concatenate([latents, latents]), timesteps, ops.concatenate([context, negative_context]))
        conditional, unconditional = ops.split(ops.cast(both, "float32"), 2)
        return classifier_free_guidance(conditional, unconditional, guidance_scale)

    def _denoise(self, latents, context, negative, num_steps, guidance_scale, start=0, on_step=None, keep=None):
        """Run the scheduler's plan from step ``start``; ``keep(latents, a_next)`` can re-impose known content."""
        from tqdm.auto import tqdm

        previous = None
        plan = self.scheduler.plan(num_steps)
        for index, (timestep, a_t, a_next) in enumerate(tqdm(plan[start:], desc="denoising", leave=False,
                                                             disable=not self.progress), start):
            noise = self.guided_noise(latents, timestep, context, negative, guidance_scale)
            if self.prediction == "v":  # noise = sqrt(1 - a) x_t + sqrt(a) v
                noise = float(np.sqrt(1.0 - a_t)) * latents + float(np.sqrt(a_t)) * noise
            latents, previous = self.scheduler.step(latents, noise, a_t, a_next, previous)
            if keep is not None:
                latents = keep(latents, a_next)
            if on_step is not None:
                on_step(index, latents)
        return latents

    def decode(self, latents):
        """Latents -> uint8 images: decoder output in [-1, 1] mapped to 0..255."""
        decoded = ops.convert_to_numpy(self._decode(ops.convert_to_tensor(latents, "float32"))).astype("float32")
        return np.clip((decoded + 1.0) / 2.0 * 255.0, 0, 255).astype("uint8")  # as KerasCV: truncate

    def initial_noise(self, batch_size, seed=None):
        return keras.random.normal((batch_size, *self.latent_shape), seed=seed)

    def generate_image(self, encoded_text, negative_prompt=None, batch_size=1, num_steps=50,
                       unconditional_guidance_scale=7.5, diffusion_noise=None, seed=None, on_step=None):
        """Encoded text -> uint8 images (batch_size, height, width, 3), as KerasCV's ``generate_image``.

        encoded_text: (77, 768) for every image, or (batch_size, 77, 768).
        diffusion_noise: the starting latent noise (h/8, w/8, 4) or (batch_size, h/8, w/8, 4);
            otherwise drawn from ``seed``.
        on_step: optional callback (step index, latents) after each step.
        """
        if diffusion_noise is not None and seed is not None:
            raise ValueError("pass diffusion_noise or seed, not both: seed only draws the noise")
        context, negative = self._context_pair(encoded_text, negative_prompt, batch_size)
        if diffusion_noise is None:
            latents = self.initial_noise(batch_size, seed)
        else:
            latents = expand(diffusion_noise, batch_size, "diffusion_noise", self.latent_shape)
        latents = self._denoise(latents, context, negative, num_steps, unconditional_guidance_scale, on_step=on_step)
        return self.decode(latents)

    def text_to_image(self, prompt, negative_prompt=None, batch_size=1, num_steps=50, unconditional_guidance_scale=7.5,
                      seed=None):
        """A prompt -> uint8 images (batch_size, height, width, 3)."""
        return self.generate_image(self.encode_text(prompt), negative_prompt, batch_size, num_steps,
                                   unconditional_guidance_scale, seed=seed)

    # -- editing existing images -----------------------------------------------------------------
    def encode_image(self, image):
        """uint8 (or float in [0, 1]) images (b, h, w, 3) or (h, w, 3) -> scaled latents."""
        if self._encode_image is None:
            raise ValueError("this pipeline has no image_encoder; image_to_image and inpaint need one")
        images = as_images(image, self.img_height, self.img_width)
        return self._encode_image(ops.convert_to_tensor(images * 2.0 - 1.0))

    def image_to_image(self, prompt, image, strength=0.75, negative_prompt=None, num_steps=50,
                       unconditional_guidance_scale=7.5, seed=None):
        """Repaint an image towards a prompt (SDEdit): noise its latent part-way, then denoise.

        strength in (0, 1]: the share of the ``num_steps`` schedule that is re-run;
        1 ignores the image, small values keep it.
        """
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}: 0.3 keeps much of the image, 1 replaces it")
        latents0 = self.encode_image(image)
        batch = ops.shape(latents0)[0]
        start = num_steps - max(1, int(round(num_steps * float(strength))))
        _, a_start, _ = self.scheduler.plan(num_steps)[start]
        latents = add_noise(latents0, self.initial_noise(batch, seed), a_start)
        context, negative = self._context_pair(self.encode_text(prompt), negative_prompt, batch)
        return self.decode(self._denoise(latents, context, negative, num_steps, unconditional_guidance_scale, start))

    def inpaint(self, prompt, image, mask, negative_prompt=None, num_steps=50, unconditional_guidance_scale=7.5,
                seed=None, keep_unmasked=True):
        """Regenerate the masked part of an image (mask 1 = repaint), keeping the rest.

        After every step the latent outside the mask is replaced by the original
        latent noised to the same level, so the new content is denoised in the
        context of the old. With ``keep_unmasked`` the decoded result is then
        composited with the original pixels outside the mask.
        """
        images = as_images(image, self.img_height, self.img_width)
        masks = as_mask(mask, images.shape)
        latents0 = self.encode_image(images)
        batch = images.shape[0]
        # A latent pixel is repainted if any of its 8x8 pixels is.
        f = self.pixels_per_latent
        latent_mask = masks.reshape(batch, self.latent_shape[0], f, self.latent_shape[1], f).max(axis=(2, 4))[..., None]
        latent_mask = ops.convert_to_tensor(latent_mask.astype("float32"))
        noise = self.initial_noise(batch, seed)

        def keep(latents, a_next):  # known region: the original, noised to the level just reached
            return latent_mask * latents + (1.0 - latent_mask) * add_noise(latents0, noise, a_next)

        _, a_start, _ = self.scheduler.plan(num_steps)[0]
        latents = keep(noise, a_start)
        context, negative = self._context_pair(self.encode_text(prompt), negative_prompt, batch)
        out = self.decode(self._denoise(latents, context, negative, num_steps, unconditional_guidance_scale, keep=keep))
        if keep_unmasked:
            original = np.round(images * 255.0).astype("uint8")
            out = np.where(masks[..., None] > 0, out, original)
        return out
