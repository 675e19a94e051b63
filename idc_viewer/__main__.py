"""``python -m idc_viewer``: the same as the ``idc-viewer`` command."""

import sys

from idc_viewer.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
