"""``python -m speechbrain_ext.classify``: classify audio files with an exported or trained model.

The code lives in :mod:`speechbrain_ext.serving.classify`; this module keeps the command's name.
"""

import sys

from speechbrain_ext.serving.classify import main

if __name__ == "__main__":
    sys.exit(main())
