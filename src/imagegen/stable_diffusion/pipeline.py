"""The Stable Diffusion pipeline: prompt -> tokens -> text features -> denoised latent -> image.

    context  = text_encoder(tokenize(prompt))                       (b, 77, 768)
    x_T      ~ N(0, I)                                              (b, h/8, w/8, 4)
    for timestep, a_t, a_next in scheduler.plan(n):                 noisiest first
        o_c, o_u = unet([x_t, x_t], timestep, [context, negative]) one call, doubled batch
        o        = o_u + s (o_c - o_u)                              classifier-free guidance
        e        = to_epsilon(o, x_t, a_t)                          o is e, or v (SD 2.x's 768-v)
        x_t, x0, state = scheduler.step(x_t, e, a_t, a_next, state) DDIM or DPM-Solver++
    image    = decoder(x_0)                                         (b, h, w, 3) in [-1, 1]

The public methods carry KerasCV's names and arguments (``text_to_image``,
``encode_text``, ``generate_image``) and add ``image_to_image`` and
``inpaint``. All return uint8 arrays (batch, height, width, 3). The guided
UNet call and the decoder are compiled (XLA with TensorFlow, ``jax.jit`` with
JAX); the schedulers' few elementwise updates run around them. Schedules,
samplers and conversions are ``imagegen.diffusion``'s, the ones notebook 03's
pixel-space model uses: only what is denoised (latents) and the conditioning differ.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imagegen.clip import CLIPTokenizer
from imagegen.diffusion.prediction import add_noise, to_epsilon
from imagegen.diffusion.samplers import classifier_free_guidance, get_scheduler, sample
from imagegen.stable_diffusion.compiled import compile_function
from imagegen.stable_diffusion.inputs import as_images, as_mask, expand


class StableDiffusion:
    """Text-to-image, image-to-image and inpainting with a text encoder, a UNet and a VAE.

    text_encoder: ``imagegen.clip.TextEncoder`` (token ids -> features).
    unet: ``imagegen.stable_diffusion.UNet``.
    decoder: ``Decoder`` (latent -> image); image_encoder: ``Encoder`` (needed by
        image_to_image and inpaint).
    tokenizer: a ``CLIPTokenizer`` whose max_length matches the text encoder.
    img_height, img_width: output size in pixels, fixed at construction.
    scheduler: "ddim" (KerasCV's sampler, default) or "dpm++2m" (fewer steps).
    schedule: the noise schedule the weights came with (a ``DiscreteSchedule``; default SD's, on KerasCV's spacing);
        ``sources.from_diffusers`` and ``sources.from_single_file`` pass their source's own.
    jit_compile: compile the guided UNet call and the decoder.
    progress: show a progress bar over the denoising steps.
    """

    def __init__(self, text_encoder, unet, decoder, image_encoder=None, tokenizer=None, img_height=512, img_width=512,
                 scheduler="ddim", schedule=None, jit_compile=True, progress=True):
        self.text_encoder, self.unet, self.decoder, self.image_encoder = text_encoder, unet, decoder, image_encoder
        self.tokenizer = tokenizer or CLIPTokenizer(max_length=text_encoder.max_length)
        self.pixels_per_latent = decoder.downsampling
        self.size_multiple = multiple = self.pixels_per_latent * unet.downsampling  # sizes (and outpainting's pads)
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
    # Loading weights is not the pipeline's job: ``imagegen.stable_diffusion.sources`` (``from_preset``,
    # ``from_diffusers``, ...) builds the modules and hands them to ``__init__``.
    def resized(self, img_height, img_width):
        """The same modules, tokenizer and sampler, making pictures of another size (outpainting's wider canvas)."""
        return StableDiffusion(self.text_encoder, self.unet, self.decoder, self.image_encoder, self.tokenizer, img_height,
                               img_width, scheduler=self.scheduler, jit_compile=self.jit_compile, progress=self.progress)

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
    def guided_prediction(self, latents, timestep, context, negative_context, guidance_scale):
        """o_u + s (o_c - o_u) from ONE UNet call on [latents, latents] with [context, negative]; o is e or v."""
        batch = ops.shape(latents)[0]
        timesteps = ops.full((2 * batch,), float(timestep), dtype="float32")
        both = self._unet_call(ops.concatenate([latents, latents]), timesteps, ops.concatenate([context, negative_context]))
        conditional, unconditional = ops.split(ops.cast(both, "float32"), 2)
        return classifier_free_guidance(conditional, unconditional, guidance_scale)

    def _denoise(self, latents, context, negative, num_steps, guidance_scale, start=0, on_step=None, keep=None):
        """Run the scheduler's plan from step ``start`` (``diffusion.samplers.sample``); ``keep`` re-imposes known content."""
        from imagegen.progress import progress_bar

        def denoise(x, timestep, a_t):
            return to_epsilon(self.guided_prediction(x, timestep, context, negative, guidance_scale), x, a_t, self.prediction)

        def progress(plan):
            return progress_bar(plan, desc="denoising", disable=not self.progress)

        return sample(denoise, latents, self.scheduler, num_steps, start, on_step, keep, progress)

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
        on_step: optional callback (step index, latents, x0) after each step, as ``DiffusionModel.generate``'s.
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
        small values keep the image; at 1 only sqrt(alpha_bar) of the noisiest step (about 0.07 for SD) remains.
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
