"""``python -m portlabel``: the same as the ``portlabel`` command."""

import sys

from portlabel.cli import main

sys.exit(main())
