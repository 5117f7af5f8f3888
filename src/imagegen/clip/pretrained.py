"""A pretrained CLIP from KerasHub (full mode), to compare the course's small CLIP with the real one.

OpenAI's CLIP ViT-B/32 reads 224x224 images normalised with its own mean and
standard deviation, and the same BPE token ids as ``CLIPTokenizer`` (padded
with <|endoftext|>, pooled at the first one). KerasHub downloads the preset
from Kaggle; offline this fails at once with ``OfflineError``.
"""

from __future__ import annotations

import pathlib

import numpy as np
from keras import ops

from imagegen import rehearsal
from imagegen.clip.contrastive import batched
from imagegen.network import require_reachable

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], "float32")
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], "float32")
DEFAULT_PRESET = "clip_vit_base_patch32"


def load_keras_hub_clip(preset=DEFAULT_PRESET):
    """KerasHub's ``CLIPBackbone`` with pretrained weights (a download of about 600 MB, or a local preset folder)."""
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError("the pretrained CLIP comes from KerasHub: pip install keras-hub") from error
    stand_in = rehearsal.stand_in_path(preset)  # a local preset folder in a rehearsal of full mode
    if stand_in is None and not pathlib.Path(preset).expanduser().is_dir():
        require_reachable("https://www.kaggle.com", f"KerasHub cannot download the {preset!r} preset from kaggle.com",
                          "connect to the internet and retry, or download the preset elsewhere and pass its folder "
                          "as load_keras_hub_clip(preset=...).", timeout=5)
    return keras_hub.models.CLIPBackbone.from_preset(stand_in or preset)


def preprocess(images, image_size=224):
    """images float (b, h, w, 3) in [0, 1] -> CLIP's input: resized, normalised by CLIP's mean and std."""
    resized = ops.image.resize(ops.convert_to_tensor(images, "float32"), (image_size, image_size), interpolation="bicubic", antialias=True)
    return (ops.clip(resized, 0.0, 1.0) - CLIP_MEAN) / CLIP_STD


def keras_hub_zero_shot(backbone, images, class_token_ids, batch_size=32):
    """Zero-shot probabilities (n_images, n_classes) from a KerasHub CLIP; prompts tokenised by ``CLIPTokenizer``."""
    def embed_images(batch):
        vectors = backbone.get_vision_embeddings(preprocess(batch, backbone.vision_encoder.image_shape[0]))
        return vectors / ops.norm(vectors, axis=-1, keepdims=True)

    def embed_texts(ids):
        vectors = backbone.get_text_embeddings(ops.convert_to_tensor(ids, "int32"))
        return vectors / ops.norm(vectors, axis=-1, keepdims=True)

    image_vectors = batched(embed_images, np.asarray(images, "float32"), batch_size)
    text_vectors = batched(embed_texts, np.asarray(class_token_ids, "int32"), batch_size)
    scale = float(ops.convert_to_numpy(ops.exp(backbone.get_layer("clip_head").logit_scale)))
    logits = scale * image_vectors @ text_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=1, keepdims=True)
