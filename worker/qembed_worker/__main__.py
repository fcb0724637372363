"""Entry point for ``python -m qembed_worker``."""

import sys

from qembed_worker.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
