"""``python -m t2ibench`` (used by ``accelerate launch -m t2ibench generate ...``)."""

import sys

from .cli import main

sys.exit(main())
