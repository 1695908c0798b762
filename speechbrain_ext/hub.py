"""``python -m speechbrain_ext.hub``: export a finished run as a hub folder, publish it.

The code lives in :mod:`speechbrain_ext.serving.export` (the command line in
:mod:`speechbrain_ext.serving.export.cli`); this module keeps the command's name.
"""

import sys

from speechbrain_ext.serving.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
