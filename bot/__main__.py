"""`python -m bot` is the same as the `forge-notifier` console script."""

import sys

from bot.cli import main

sys.exit(main())
