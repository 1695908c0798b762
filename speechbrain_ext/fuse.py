"""``python -m speechbrain_ext.fuse``: late fusion and ensembles over finished runs.

The code lives in :mod:`speechbrain_ext.methods.fusion_cli`; this module keeps the command's name.
"""

import sys

from speechbrain_ext.methods.fusion_cli import main

if __name__ == "__main__":
    sys.exit(main())
