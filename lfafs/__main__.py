import sys

from lfafs.cli import main

sys.exit(main())
