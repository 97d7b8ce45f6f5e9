import sys

from lfafs.service.cli import main

sys.exit(main())
