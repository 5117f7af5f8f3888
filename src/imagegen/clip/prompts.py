"""Prompts -> the context a text-conditioned diffusion model reads: tokenizer + frozen text encoder."""

from __future__ import annotations

import numpy as np
from keras import ops


class PromptEncoder:
    """prompt_encoder(["a red flower", ...]) -> float32 (b, max_length, width) token features.

    The text encoder runs frozen, in inference mode; the tokenizer pads and
    truncates to the encoder's ``max_length``. ``null()`` is the empty prompt's
    encoding, the "unconditional" context of classifier-free guidance.
    """

    def __init__(self, tokenizer, text_encoder, batch_size=256):
        self.tokenizer, self.text_encoder, self.batch_size = tokenizer, text_encoder, batch_size

    @property
    def context_shape(self):
        return (self.text_encoder.max_length, self.text_encoder.width)

    def token_ids(self, prompts):
        return self.tokenizer(prompts, max_length=self.text_encoder.max_length)

    def __call__(self, prompts):
        ids = self.token_ids(prompts)
        chunks = [ops.convert_to_numpy(self.text_encoder(ids[i : i + self.batch_size], training=False)) for i in range(0, len(ids), self.batch_size)]
        return np.concatenate(chunks).astype("float32")

    def null(self):
        """The empty prompt "" encoded: (max_length, width)."""
        return self([""])[0]
