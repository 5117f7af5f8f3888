"""``python -m imagegen``: the command line (see ``imagegen.cli``)."""

import sys

from imagegen.tf_logs import import_tensorflow_quietly

import_tensorflow_quietly()  # before the command line's modules load TensorFlow

from imagegen.cli import main  # noqa: E402

sys.exit(main())
