"""`python -m pipeline.cli ...`: the same as the `finsent` launcher."""

import sys

from pipeline.cli.main import main

sys.exit(main())
