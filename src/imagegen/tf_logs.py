"""Keep TensorFlow's C++ start-up log out of notebooks and terminals.

Why: TensorFlow's C++ side writes straight to the process's standard error (file
descriptor 2), past Python: "oneDNN custom operations are on", "This TensorFlow
binary is optimized to use available CPU instructions", "XLA service ...
initialized", "Compiled cluster using XLA!". Jupyter copies these lines into the
cell's output, where a learner reads them as errors. None of them is one.

``import_tensorflow_quietly()`` does two things:
- it sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set), which drops the C++
  INFO, WARNING and ERROR lines logged after TensorFlow has loaded: the XLA ones,
  and notes logged as errors such as "oneDNN supports DT_INT32 only on platforms
  with AVX-512. Falling back to the default Eigen-based implementation" (on a CPU)
  or "Unable to register cuDNN factory" (in Colab). A real failure still reaches
  the learner: TensorFlow raises it as a Python exception;
- it loads TensorFlow with descriptor 2 pointed at a temporary file, because the
  lines logged while the library loads ignore that setting. Whatever else arrived
  there (a real error) is written back.

Every notebook's config cell calls it after choosing the Keras backend and before
importing Keras (which loads TensorFlow), as do the command lines. This module
imports nothing heavy itself, so that it can run first.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile

# Lines TensorFlow 2.x writes while it loads, none of them a problem: the first is absl's note that logging
# started before it was set up, the others say which CPU instructions and kernels are in use.
START_UP_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "port.cc:153] oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "To enable the following instructions:",
)


def is_start_up_noise(line):
    """True for one of TensorFlow's known start-up lines (``START_UP_NOISE``)."""
    return any(marker in line for marker in START_UP_NOISE)


def import_tensorflow_quietly():
    """Import TensorFlow (if installed and not yet imported) without its C++ start-up lines; returns True if it did."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return False
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  (loaded now, so that later imports find it in sys.modules)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_start_up_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return True
