"""Run the CLI: ``python -m gradsight``."""

import os
import sys

from gradsight.cli import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        # Under torchrun the ranks have just left the process group together (a barrier).
        # Exit now, all alike, without the interpreter's teardown: torchrun stops the other
        # ranks as soon as one exits non-zero and would report a slower one as killed
        # instead of with its own exit code (3 for a NaN/Inf stop). Files are closed by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
