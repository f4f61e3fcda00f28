"""``python -m streamx`` runs the command line."""

import sys

from streamx.cli import main

if __name__ == "__main__":
    sys.exit(main())
