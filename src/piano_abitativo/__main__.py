"""``python -m piano_abitativo``: the command line, as ``piano-abitativo``."""

import sys

from piano_abitativo.cli import main

sys.exit(main())
