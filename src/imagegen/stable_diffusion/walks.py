"""Latent walks with a text-to-image pipeline: smooth animations through what the model can draw.

Two walks, each a batch of frames rendered with the same sampler:
- ``prompt_walk``: one starting noise, the text features moving in a straight
  line from one prompt's to another's: c(s) = (1 - s) c_a + s c_b;
- ``noise_walk``: one prompt, the starting noise going round a circle
  x(angle) = cos(angle) n_1 + sin(angle) n_2, every point again a N(0, I) draw,
  so each frame is a typical sample and the loop closes on itself.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from imagegen.latent import circular_walk


def _render(pipeline, contexts, noises, num_steps, guidance_scale, batch_size):
    frames = []
    for start in range(0, len(noises), batch_size):
        stop = min(start + batch_size, len(noises))
        frames.append(pipeline.generate_image(contexts[start:stop], batch_size=stop - start, num_steps=num_steps,
                                              unconditional_guidance_scale=guidance_scale,
                                              diffusion_noise=noises[start:stop]))
    return np.concatenate(frames)


def prompt_walk(pipeline, prompt_a, prompt_b, num_frames=16, seed=0, num_steps=25, guidance_scale=7.5, batch_size=8):
    """uint8 frames (num_frames, h, w, 3) from ``prompt_a`` to ``prompt_b`` with the same noise."""
    a, b = (ops.convert_to_numpy(pipeline.encode_text(p))[0] for p in (prompt_a, prompt_b))
    weights = np.linspace(0.0, 1.0, num_frames, dtype="float32")[:, None, None]
    contexts = (1.0 - weights) * a + weights * b  # c(s) = (1 - s) c_a + s c_b
    noise = ops.convert_to_numpy(pipeline.initial_noise(1, seed=seed))
    return _render(pipeline, contexts, np.repeat(noise, num_frames, axis=0), num_steps, guidance_scale, batch_size)


def noise_walk(pipeline, prompt, num_frames=16, seed=0, num_steps=25, guidance_scale=7.5, batch_size=8):
    """uint8 frames (num_frames, h, w, 3) of one prompt, the starting noise going once round a circle."""
    n1, n2 = (ops.convert_to_numpy(pipeline.initial_noise(1, seed=seed + k))[0] for k in (0, 1))
    noises = circular_walk(n1, n2, num_frames)  # x = cos(angle) n_1 + sin(angle) n_2
    context = ops.convert_to_numpy(pipeline.encode_text(prompt))
    return _render(pipeline, np.repeat(context, num_frames, axis=0), noises, num_steps, guidance_scale, batch_size)
