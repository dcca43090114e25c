"""``python -m polyrec.engine.cli``."""

import sys

from polyrec.engine.cli import main

sys.exit(main())
