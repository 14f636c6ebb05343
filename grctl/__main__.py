"""``python -m grctl``: the same as the ``grctl`` command."""

import sys

from grctl.cli import main

sys.exit(main())
