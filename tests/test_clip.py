"""CLIP: the tokenizer against KerasCV's, the text encoder's causal mask, the contrastive loss, saving."""

import gzip
import hashlib
import warnings

import keras
import numpy as np
import pytest

from imagegen.clip import CLIP, CLIPTokenizer, PromptEncoder, TextEncoder, build_image_encoder, contrastive_loss, retrieve, zero_shot_classify
from imagegen.clip.tokenizer import vocabulary_path

VARIED_TEXTS = [
    "a photograph of an astronaut riding a horse",
    "A Photograph  of an ASTRONAUT\triding\n a horse!!!",
    "Café déjà vu: naïve façade, crème brûlée, Ångström, São Paulo",
    "🚀🐴 an emoji rocket 👩‍🚀 and a horse 🐎🌕",
    "1234567 numbers 3.14159 and 1,000,000 and 2nd place",
    "&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; &quot;quoted&quot; &#39;single&#39;",
    "don't you'll we've I'm she'd it's THEY'RE",
    "Ελληνικά, русский текст, 東京タワー, 한국어, עברית",
    "   leading and trailing whitespace   ",
    "punctuation!?... ---- ((brackets)) [[x]] {y} <z> @#$%^&*",
    "hyphen-ated words, under_scores, CamelCaseWords and snake_case",
    "",
    "a",
    "ünïcödé " * 40,
    " ".join(["a very long prompt that goes on"] * 20),
]


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def keras_cv_tokenizer():
    stable_diffusion = pytest.importorskip("keras_cv.models.stable_diffusion")
    return stable_diffusion.SimpleTokenizer(vocabulary_path())


def test_vocabulary_file_is_the_pinned_one():
    data = open(vocabulary_path(), "rb").read()
    assert len(data) == 1_356_917
    assert hashlib.sha256(data).hexdigest() == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
    assert b"#version" in gzip.decompress(data).split(b"\n")[0]  # the first line is a header, not a merge


def test_vocabulary_size_and_special_ids(tokenizer):
    assert tokenizer.vocabulary_size == 49408
    assert (tokenizer.start_token_id, tokenizer.end_token_id) == (49406, 49407)


@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_encode_matches_keras_cv(tokenizer, keras_cv_tokenizer, text):
    assert tokenizer.encode(text) == keras_cv_tokenizer.encode(text)


def test_encode_is_the_known_sequence(tokenizer):
    # Ids from CLIP's vocabulary: "a</w>" 320, "red</w>" 736, "flower</w>" 4055.
    assert tokenizer.encode("A red   flower") == [49406, 320, 736, 4055, 49407]


def test_decode_inverts_encode(tokenizer):
    text = "a café with 3 emoji 🚀🐴 and punctuation!"
    assert tokenizer.decode(tokenizer.encode(text)) == "a café with 3 emoji 🚀🐴 and punctuation !"


def test_call_pads_with_end_token_to_77(tokenizer):
    ids = tokenizer(["a red flower", "a photograph of an astronaut riding a horse"])
    assert ids.shape == (2, 77) and ids.dtype == np.int32
    assert list(ids[0, :5]) == [49406, 320, 736, 4055, 49407]
    assert (ids[0, 5:] == 49407).all()


def test_long_prompts_are_truncated_with_a_warning(tokenizer):
    text = " ".join(["word"] * 100)
    with pytest.warns(UserWarning, match="102 tokens"):
        ids = tokenizer([text])
    full = tokenizer.encode(text)
    assert ids.shape == (1, 77)
    assert list(ids[0, :76]) == full[:76] and ids[0, 76] == 49407


def test_short_prompts_do_not_warn(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer(["a short prompt"] * 3, max_length=16)


def test_empty_prompt_list_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no prompts"):
        tokenizer([])


def test_add_tokens_matches_keras_cv(keras_cv_tokenizer):
    ours = CLIPTokenizer()
    assert ours.add_tokens(["<toy-star>", "<toy-star>"]) == 1
    assert keras_cv_tokenizer.add_tokens("<toy-star>") == 1
    text = "a photo of a <toy-star> flower, <TOY-STAR>!"
    assert ours.encode(text) == keras_cv_tokenizer.encode(text)
    assert ours.token_id("<toy-star>") == 49408
    assert 49408 in ours.encode("a <toy-star> flower")
    assert ours.decode(ours.encode("a <toy-star> flower")) == "a <toy-star> flower"


def test_tokens_shows_the_pieces(tokenizer):
    assert tokenizer.tokens("Sunflowers!") == ["sunflowers</w>", "!</w>"]


# -- text encoder ---------------------------------------------------------------------------


def tiny_text_encoder(**overrides):
    return TextEncoder(**{**dict(vocabulary_size=60, max_length=8, width=16, num_layers=2, num_heads=2), **overrides})


def test_causal_mask_later_tokens_do_not_change_earlier_outputs():
    keras.utils.set_random_seed(0)
    encoder = tiny_text_encoder()
    ids = np.array([[1, 5, 7, 9, 11, 13, 15, 17]], dtype="int32")
    changed = ids.copy()
    changed[0, 5:] = [40, 41, 42]
    a, b = keras.ops.convert_to_numpy(encoder(ids)), keras.ops.convert_to_numpy(encoder(changed))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-3
    # ... while an earlier token does change the later outputs.
    earlier = ids.copy()
    earlier[0, 1] = 30
    c = keras.ops.convert_to_numpy(encoder(earlier))
    assert np.abs(a[:, 2:] - c[:, 2:]).min(axis=-1).max() > 1e-4


def test_pool_takes_the_first_end_token():
    encoder = tiny_text_encoder(end_token_id=50)
    features = np.arange(2 * 8 * 16, dtype="float32").reshape(2, 8, 16)
    ids = np.array([[1, 2, 50, 50, 50, 50, 50, 50], [1, 55, 56, 57, 50, 50, 50, 50]], dtype="int32")
    pooled = keras.ops.convert_to_numpy(encoder.pool(features, ids))
    np.testing.assert_array_equal(pooled, features[[0, 1], [2, 4]])


def test_unknown_config_name_is_a_clear_error():
    with pytest.raises(ValueError, match="clip-l"):
        TextEncoder.from_config_name("clip-xl")


# -- contrastive model -----------------------------------------------------------------------


def test_contrastive_loss_is_symmetric():
    logits = np.random.default_rng(0).normal(size=(6, 6)).astype("float32") * 3
    forward = float(contrastive_loss(logits))
    assert forward == pytest.approx(float(contrastive_loss(logits.T)), rel=1e-6)
    positives = np.eye(6, dtype="float32")
    positives[0, 3] = positives[3, 0] = 1
    assert float(contrastive_loss(logits, positives)) == pytest.approx(float(contrastive_loss(logits.T, positives)), rel=1e-6)


def test_contrastive_loss_is_the_mean_of_both_cross_entropies():
    logits = np.random.default_rng(1).normal(size=(4, 4))
    def cross_entropy(rows):
        rows = rows - rows.max(axis=1, keepdims=True)
        return -np.mean(np.diag(rows) - np.log(np.exp(rows).sum(axis=1)))
    expected = (cross_entropy(logits) + cross_entropy(logits.T)) / 2
    assert float(contrastive_loss(logits.astype("float32"))) == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_is_low_for_matching_pairs():
    assert float(contrastive_loss(np.eye(5, dtype="float32") * 20)) < 1e-6
    assert float(contrastive_loss(np.zeros((5, 5), "float32"))) == pytest.approx(np.log(5), rel=1e-5)


def test_image_encoder_keeps_the_layout_saved_models_have():
    """Its residual blocks are diffusion's (without time): names, shapes, groups, epsilons and init stay as saved."""
    model = build_image_encoder(16, (8, 16), feature_dims=16)
    layout = []
    for layer in model.layers:
        if layer.weights:
            norm = type(layer).__name__ == "GroupNormalization"
            detail = (layer.groups, layer.epsilon) if norm else type(getattr(layer, "kernel_initializer", None)).__name__
            layout.append((layer.name, [tuple(w.shape) for w in layer.weights], detail))
    block = lambda s, c, cin: [(f"stage{s}_block_norm1", [(cin,), (cin,)], (8, 0.001)),  # noqa: E731
                               (f"stage{s}_block_conv1", [(3, 3, cin, c), (c,)], "GlorotUniform"),
                               (f"stage{s}_block_norm2", [(c,), (c,)], (8, 0.001)),
                               (f"stage{s}_block_conv2", [(3, 3, c, c), (c,)], "Zeros")]
    assert layout == [("stem", [(3, 3, 3, 8), (8,)], "GlorotUniform"), *block(0, 8, 8),
                      ("stage1_downsample", [(3, 3, 8, 16), (16,)], "GlorotUniform"), *block(1, 16, 16),
                      ("features", [(16, 16), (16,)], "GlorotUniform"), ("final_layer_norm", [(16,), (16,)], "NoneType")]


def tiny_clip():
    keras.utils.set_random_seed(0)
    return CLIP(build_image_encoder(16, (8, 16), feature_dims=16), tiny_text_encoder(vocabulary_size=49408, end_token_id=49407), embedding_dims=8)


def test_clip_trains_and_round_trips_through_save(tmp_path):
    clip = tiny_clip()
    tokenizer = CLIPTokenizer(max_length=8)
    images = np.random.default_rng(0).random((8, 16, 16, 3)).astype("float32")
    ids = tokenizer(["a red flower", "a blue flower"] * 4)
    clip.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = clip.fit({"images": images, "token_ids": ids}, batch_size=8, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = tmp_path / "clip.keras"
    clip.save(path)
    loaded = keras.saving.load_model(path)
    inputs = {"images": images, "token_ids": ids}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clip(inputs)), keras.ops.convert_to_numpy(loaded(inputs)), atol=1e-5)


def test_zero_shot_and_retrieval_shapes():
    clip = tiny_clip()
    tokenizer = CLIPTokenizer(max_length=8)
    images = np.random.default_rng(0).random((5, 16, 16, 3)).astype("float32")
    probabilities = zero_shot_classify(clip, images, tokenizer(["a red flower", "a blue flower", "a cat"]))
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    best = retrieve(clip, tokenizer(["a red flower"]), images, top_k=2)
    assert best.shape == (1, 2) and len(set(best[0])) == 2


def test_prompt_encoder_pads_to_the_encoder_length():
    clip = tiny_clip()
    encode = PromptEncoder(CLIPTokenizer(), clip.text_encoder)
    context = encode(["a red flower", "a blue flower"])
    assert context.shape == (2, 8, 16) and context.dtype == np.float32
    assert encode.null().shape == (8, 16)


def test_text_encoder_matches_keras_cv_on_its_weights():
    stable_diffusion = pytest.importorskip("keras_cv.models.stable_diffusion")
    keras.utils.set_random_seed(1)
    theirs = stable_diffusion.TextEncoder(77, download_weights=False)  # SD v1's text encoder, random weights
    ours = TextEncoder.from_keras_cv(theirs)
    assert ours.count_params() == theirs.count_params() == 123_060_480
    ids = CLIPTokenizer()(["a photograph of an astronaut riding a horse", "a red flower"])
    positions = np.tile(np.arange(77, dtype="int32"), (2, 1))
    expected = keras.ops.convert_to_numpy(theirs([ids, positions]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(ids)), expected, atol=1e-4)


def keras_cv_style_text_encoder(width=64, num_heads=4, num_layers=3, max_length=8, vocabulary_size=100, activation=None):
    """A text encoder of any size built from KerasCV's own layers, as KerasCV's ``TextEncoder`` is (random weights)."""
    kcv = pytest.importorskip("keras_cv.src.models.stable_diffusion.text_encoder")
    tokens = keras.Input((max_length,), dtype="int32")
    positions = keras.Input((max_length,), dtype="int32")
    x = kcv.CLIPEmbedding(vocabulary_size, width, max_length)([tokens, positions])
    for _ in range(num_layers):
        x = kcv.CLIPEncoderLayer(width, num_heads, activation=activation or kcv.quick_gelu)(x)
    return keras.Model([tokens, positions], keras.layers.LayerNormalization(epsilon=1e-5)(x))


def test_from_keras_cv_reads_the_layer_and_head_counts_from_the_model():
    """Heads of 16 channels, not SD's 64: counting weights cannot tell, KerasCV's layers can."""
    keras.utils.set_random_seed(2)
    theirs = keras_cv_style_text_encoder(width=64, num_heads=4, num_layers=3)
    ours = TextEncoder.from_keras_cv(theirs)
    assert (ours.config["num_layers"], ours.config["num_heads"], ours.max_length, ours.width) == (3, 4, 8, 64)
    ids = np.random.default_rng(0).integers(0, 100, (2, 8)).astype("int32")
    positions = np.tile(np.arange(8, dtype="int32"), (2, 1))
    expected = keras.ops.convert_to_numpy(theirs([ids, positions]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(ids)), expected, atol=1e-4)


def test_from_keras_cv_says_what_it_cannot_read_and_how_to_fix_it():
    with pytest.raises(ValueError, match=r"no CLIPEmbedding layer.*pass a KerasCV text encoder"):
        TextEncoder.from_keras_cv(keras.Sequential([keras.Input((8,), dtype="int32"), keras.layers.Embedding(100, 16)]))
    with pytest.raises(ValueError, match=r"no CLIPEncoderLayer.*pass num_layers=.*num_heads="):
        TextEncoder.from_keras_cv(keras_cv_style_text_encoder(width=16, num_layers=0))
    unknown = keras_cv_style_text_encoder(width=16, num_heads=2, num_layers=1, activation=keras.ops.relu)
    with pytest.raises(ValueError, match=r"activation.*pass activation="):
        TextEncoder.from_keras_cv(unknown)
    assert TextEncoder.from_keras_cv(unknown, activation="gelu").config["activation"] == "gelu"


def test_pretrained_encoders_fail_fast_offline(monkeypatch):
    import time

    from imagegen.network import OfflineError
    from imagegen.stable_diffusion.presets import load_text_encoder

    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OfflineError, match="huggingface.co"):
        load_text_encoder("sd-v1.4")
    assert time.monotonic() - start < 5
