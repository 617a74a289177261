"""``python -m xbench`` (also under ``torchrun -m xbench``): the command line."""

import sys

from xbench.cli import main

sys.exit(main())
