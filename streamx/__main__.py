"""``python -m streamx`` runs the command line."""

import sys

from streamx.cli import main

sys.exit(main())
