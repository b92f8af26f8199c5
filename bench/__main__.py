"""`python -m bench` runs the `flashspeech-bench` CLI."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
