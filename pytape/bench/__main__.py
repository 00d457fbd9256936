"""``python -m pytape.bench``: the same as ``python -m pytape bench``."""
import sys

from .cli import main

sys.exit(main())
