"""Reading one ``.safetensors`` file into numpy arrays: the only way weights from outside the package are read.

Why one reader: a diffusers folder (``repository.py``), an original-layout checkpoint
(``single_file.py``) and the course's shipped mini model (``mini_asset.py``) all hold
safetensors, and each should refuse the same things the same way. Pickle files
(``.ckpt``, ``.pt``, ``.bin``) can run code when loaded, so they are never read: the
error gives a one-off conversion command to run in an environment you trust.
This module imports nothing from the package, so any loader can use it.
"""

from __future__ import annotations

import pathlib

PICKLES = (".ckpt", ".pt", ".pth", ".bin")
CONVERT = ("python -c \"import torch, safetensors.torch as st; sd = torch.load({src!r}, map_location='cpu', weights_only=True); "
           "st.save_file({{k: v.detach().clone().contiguous() for k, v in sd.get('state_dict', sd).items() "
           "if hasattr(v, 'contiguous')}}, {dst!r})\"")


def read_safetensors(path, dtype=None):
    """{name: numpy array} of every tensor in a ``.safetensors`` file, refusing pickles.

    dtype: cast every array to it (e.g. "float32"); None keeps each tensor's own dtype.
    """
    path = pathlib.Path(path).expanduser()
    if path.suffix.lower() in PICKLES:
        command = CONVERT.format(src=str(path), dst=str(path.with_suffix(".safetensors")))
        raise ValueError(f"{path.name} is a pickle file, and pickle files can run code when loaded: only .safetensors "
                         f"are read. Convert it to safetensors once, in an environment you trust: {command}")
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError("reading .safetensors weights needs safetensors: pip install safetensors") from error
    try:
        tensors = load_file(str(path))
    except KeyError as error:  # older safetensors' numpy reader has no bfloat16
        raise ValueError(f"{path.name} holds {error} tensors that this safetensors cannot read with numpy: "
                         "upgrade safetensors (0.8.0 reads bfloat16)") from error
    if dtype is None:
        return tensors
    return {key: value.astype(dtype) for key, value in tensors.items()}
