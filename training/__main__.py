"""``python -m training`` is ``idc-train`` (the app runs retraining this way, as a subprocess)."""

import sys

from training.cli import main

sys.exit(main())
