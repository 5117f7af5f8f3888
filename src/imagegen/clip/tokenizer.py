"""CLIP's tokenizer: text -> integer ids, as Stable Diffusion reads a prompt.

CLIP splits text with byte-level byte-pair encoding (BPE; Radford et al., 2021):

1. clean: undo HTML escapes (twice), squeeze whitespace, lower-case;
2. split into words, numbers (one digit each) and punctuation runs with a regex;
3. write each piece as bytes, each byte as a printable character, so any
   unicode (accents, emoji) is representable and nothing is ever "unknown";
4. merge adjacent symbols greedily in the order of the 48,894 learned merges;
   a word's last symbol carries "</w>" so "flower" and "flowers" share a stem;
5. wrap in <|startoftext|> (49406) ... <|endoftext|> (49407) and pad with
   <|endoftext|> to the context length, 77 for Stable Diffusion.

The vocabulary (256 bytes, 256 bytes with "</w>", 48,894 merges, 2 special
tokens = 49,408) ships with this package (see ``assets/NOTICE.md``). ``encode``
gives the same ids as KerasCV's ``SimpleTokenizer.encode`` on any text; like
KerasCV (and unlike OpenAI's code) it does not run ``ftfy`` on the text first.
"""

from __future__ import annotations

import functools
import gzip
import html
import warnings
from importlib import resources

import numpy as np
import regex

VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
NUM_MERGES = 49152 - 256 - 2  # merges the vocabulary uses (the file holds a few more)


@functools.lru_cache()
def bytes_to_unicode():
    """The 256 bytes -> 256 printable characters (printable ASCII/Latin-1 map to themselves)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return dict(zip(printable, [chr(code) for code in codes]))


def clean_text(text):
    """CLIP's cleaning: HTML unescape twice, collapse whitespace, strip, lower-case."""
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


@functools.lru_cache(maxsize=4)
def _read_merges(path):
    with gzip.open(path) as file:
        lines = file.read().decode("utf-8").split("\n")
    return tuple(tuple(line.split()) for line in lines[1 : NUM_MERGES + 1])


def vocabulary_path():
    """The shipped BPE merges file (inside the installed package)."""
    return str(resources.files("imagegen") / "assets" / VOCABULARY_FILE)


class CLIPTokenizer:
    """Byte-level BPE with CLIP's vocabulary.

    tokenizer.encode("a red flower")      -> [49406, 320, 736, 4055, 49407]  (no padding)
    tokenizer(["a red flower"])           -> int32 (1, 77), padded with 49407
    tokenizer.add_tokens("<my-pattern>")  -> new id 49408, for textual inversion

    max_length: the context length ``__call__`` pads and truncates to (77 in CLIP and SD).
    pad_token: what fills a prompt's row after its end token: <|endoftext|> (SD v1, KerasCV)
        or "!" (SD 2.x, id 0). The text encoder attends causally, yet SD's UNet reads every
        position's features, so the padding changes the pictures.
    """

    def __init__(self, max_length=77, path=None, pad_token=None):
        if max_length < 2:
            raise ValueError(f"max_length must leave room for the start and end tokens (>= 2), got {max_length}")
        self.max_length = max_length
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {char: byte for byte, char in self.byte_encoder.items()}
        merges = _read_merges(path or vocabulary_path())
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        base = list(self.byte_encoder.values())
        self.vocabulary = base + [symbol + "</w>" for symbol in base] + ["".join(merge) for merge in merges]
        self.vocabulary += [START_OF_TEXT, END_OF_TEXT]
        self.special_tokens = [START_OF_TEXT, END_OF_TEXT]
        self.cache = {}
        self._rebuild()
        if pad_token is not None and pad_token not in self.encoder:
            raise ValueError(f"pad_token {pad_token!r} is not in CLIP's vocabulary (SD v1 pads with {END_OF_TEXT}, SD 2.x with '!')")
        self.pad_token = pad_token

    def _rebuild(self):
        self.encoder = {token: index for index, token in enumerate(self.vocabulary)}
        self.decoder = dict(enumerate(self.vocabulary))
        self.cache.update({token: token for token in self.special_tokens})  # words already split stay cached
        # Special tokens first, then contractions, letter runs, single digits, other non-space runs.
        specials = "|".join(regex.escape(token) for token in self.special_tokens)
        self.pattern = regex.compile(specials + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    # -- vocabulary -----------------------------------------------------------------------
    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    @property
    def start_token_id(self):
        return self.encoder[START_OF_TEXT]

    @property
    def end_token_id(self):
        return self.encoder[END_OF_TEXT]

    @property
    def pad_token_id(self):
        """SD v1 pads prompts with <|endoftext|>; SD 2.x's tokenizer with "!"."""
        return self.end_token_id if self.pad_token is None else self.encoder[self.pad_token]

    def add_tokens(self, tokens):
        """Add whole-word tokens (e.g. "<my-cat>") that are never split; returns how many were new.

        New ids follow the vocabulary (49408, 49409, ...): grow the text encoder's
        token embedding to match (textual inversion learns just those rows).
        """
        tokens = [tokens] if isinstance(tokens, str) else list(tokens)
        added = 0
        for token in tokens:
            if not token or token != token.strip():
                raise ValueError(f"a new token must be non-empty without surrounding spaces, got {token!r}")
            if token in self.encoder or token in self.vocabulary[len(self.encoder):]:
                continue
            self.vocabulary.append(token)
            self.special_tokens.append(token)
            added += 1
        self._rebuild()
        return added

    def token_id(self, token):
        """The id of one vocabulary entry, e.g. "flower</w>" or an added token."""
        if token not in self.encoder:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return self.encoder[token]

    # -- BPE ------------------------------------------------------------------------------
    def bpe(self, word):
        """One pre-split word (as byte characters) -> its BPE symbols joined by spaces."""
        if word in self.cache:
            return self.cache[word]
        symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            # Merge the pair the training corpus merged first (lowest rank), everywhere in the word.
            best = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged, index = [], 0
            while index < len(symbols):
                if index < len(symbols) - 1 and (symbols[index], symbols[index + 1]) == best:
                    merged.append(symbols[index] + symbols[index + 1])
                    index += 2
                else:
                    merged.append(symbols[index])
                    index += 1
            symbols = tuple(merged)
        result = " ".join(symbols)
        self.cache[word] = result
        return result

    def tokens(self, text):
        """The BPE symbols of ``text`` (no start/end), for looking at: "sunflowers" -> ['sun', 'flowers</w>']."""
        symbols = []
        for piece in self.pattern.findall(clean_text(text)):
            if piece in self.special_tokens:
                symbols.append(piece)
                continue
            word = "".join(self.byte_encoder[byte] for byte in piece.encode("utf-8"))
            symbols.extend(self.bpe(word).split(" "))
        return symbols

    def encode(self, text):
        """text -> ids with start and end tokens, unpadded (KerasCV's ``SimpleTokenizer.encode``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes one string, got {type(text).__name__}; call the tokenizer on a list")
        return [self.start_token_id] + [self.encoder[symbol] for symbol in self.tokens(text)] + [self.end_token_id]

    def decode(self, ids, skip_special=True):
        """ids -> text. Start, end and padding tokens are dropped unless ``skip_special=False``."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if skip_special:
            ids = [i for i in ids if i not in (self.start_token_id, self.end_token_id)]
        pieces, buffer = [], bytearray()
        for symbol in (self.decoder[i] for i in ids):
            if symbol in self.special_tokens:  # an added token: its text as it is
                pieces.append(buffer.decode("utf-8", errors="replace") + symbol + "</w>")
                buffer = bytearray()
            else:
                word_end = symbol.endswith("</w>")
                buffer.extend(self.byte_decoder[char] for char in symbol.removesuffix("</w>"))
                buffer.extend(b" " if word_end else b"")
        pieces.append(buffer.decode("utf-8", errors="replace"))
        return "".join(pieces).replace("</w>", " ").strip()

    def __call__(self, texts, max_length=None):
        """Texts -> int32 (batch, max_length) ids, padded with <|endoftext|> (or ``pad_token``).

        Longer texts are cut to max_length (keeping the end token last) with a warning,
        as OpenAI's ``clip.tokenize(truncate=True)`` does.
        """
        max_length = max_length or self.max_length
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no prompts given: pass a string or a non-empty list of strings")
        ids = np.full((len(texts), max_length), self.pad_token_id, dtype="int32")
        for row, text in enumerate(texts):
            encoded = self.encode(text)
            if len(encoded) > max_length:
                warnings.warn(f"prompt has {len(encoded)} tokens with start and end, more than {max_length}; "
                              f"the last {len(encoded) - max_length} are dropped: {text[:60]!r}...", stacklevel=2)
                encoded = encoded[: max_length - 1] + [self.end_token_id]
            ids[row, : len(encoded)] = encoded
        return ids
