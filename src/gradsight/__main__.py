"""Run the CLI: ``python -m gradsight``."""

import sys

from gradsight.cli import main

if __name__ == "__main__":
    sys.exit(main())
