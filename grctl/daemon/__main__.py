"""``python -m grctl.daemon`` is ``grctld``."""

import sys

from grctl.daemon.cli import main

sys.exit(main())
