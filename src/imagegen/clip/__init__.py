"""CLIP: the tokenizer and text encoder Stable Diffusion reads prompts with, and contrastive training.

- ``tokenizer``: CLIP's byte-level BPE with the real 49,408-token vocabulary;
- ``text_encoder``: the causal Transformer (``clip-l`` is SD v1's; ``clip-tiny`` trains on a CPU);
- ``image_encoder``: a small ResNet for contrastive training;
- ``contrastive``: ``CLIP`` with a learned temperature, the symmetric loss, zero-shot and retrieval helpers;
- ``prompts``: ``PromptEncoder``, prompts -> the context a text-conditioned diffusion model reads.
"""

from imagegen.clip.image_encoder import build_image_encoder
from imagegen.clip.contrastive import CLIP, contrastive_loss, retrieve, similarity, zero_shot_classify
from imagegen.clip.prompts import PromptEncoder
from imagegen.clip.text_encoder import CONFIGS, TextEncoder, quick_gelu
from imagegen.clip.tokenizer import CLIPTokenizer, clean_text

__all__ = [
    "CLIP", "CLIPTokenizer", "CONFIGS", "PromptEncoder", "TextEncoder", "build_image_encoder", "clean_text", "contrastive_loss",
    "quick_gelu", "retrieve", "similarity", "zero_shot_classify",
]
