"""``python -m imagegen``: the command line (see ``imagegen.cli``)."""

import sys

from imagegen.cli import main

sys.exit(main())
