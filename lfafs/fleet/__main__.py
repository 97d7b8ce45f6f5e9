"""``python -m lfafs.fleet ...``: the ``lfafs fleet`` commands on their own."""

import sys

from lfafs.fleet.cli import main

sys.exit(main())
