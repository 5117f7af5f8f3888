"""TensorFlow's C++ start-up lines stay out of notebooks and terminals; anything else it writes gets through."""

import os
import subprocess
import sys
import textwrap

from imagegen.tf_logs import is_start_up_noise

NOISE = "I0000 00:00:1796298239.412031   32082 port.cc:153] oneDNN custom operations are on. You may see ..."
REAL = "E0000 00:00:1796298244.820769   32082 something.cc:42] a real error\n"


def run(code, **env):
    """Run ``code`` in a fresh Python; ``env`` values replace the environment's (None: unset)."""
    merged = {key: value for key, value in {**os.environ, **env}.items() if value is not None}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=merged)


def test_the_known_start_up_lines_are_noise_and_nothing_else():
    assert is_start_up_noise(NOISE)
    assert is_start_up_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert is_start_up_noise("To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow")
    assert not is_start_up_noise(REAL) and not is_start_up_noise("Traceback (most recent call last):")


def test_a_quiet_import_drops_the_noise_written_to_the_file_descriptor_and_keeps_the_rest(tmp_path):
    # A stand-in "tensorflow" that writes like the real one: to descriptor 2 directly, past Python.
    (tmp_path / "tensorflow.py").write_text(f"import os\nos.write(2, {(NOISE + chr(10) + REAL).encode()!r})\n")
    result = run(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from imagegen.tf_logs import import_tensorflow_quietly
        print(import_tensorflow_quietly(), import_tensorflow_quietly(), "tensorflow" in sys.modules)
        import os
        print(os.environ["TF_CPP_MIN_LOG_LEVEL"])
        os.write(2, b"after\\n")  # the descriptor is back
    """, TF_CPP_MIN_LOG_LEVEL="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "True", "1"]  # imported once; a level already set is kept
    assert result.stderr == REAL + "after\n"


def test_the_real_tensorflow_loads_without_a_line():
    result = run("""
        from imagegen.tf_logs import import_tensorflow_quietly
        import_tensorflow_quietly()
        import os
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        import keras, numpy as np
        model = keras.Sequential([keras.layers.Dense(2)])
        model.compile(loss="mse", jit_compile=True)  # XLA logs a few INFO lines when it compiles
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
    """, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL=None)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
