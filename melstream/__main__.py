"""``python -m melstream COMMAND ...``, also ``accelerate launch -m melstream train ...``."""
from __future__ import annotations

import sys

from melstream.cli import main

if __name__ == "__main__":
    sys.exit(main())
