"""``python -m speechbrain_ext.demo``: train a tiny model on a synthetic corpus, export it and classify with it.

The code lives in :mod:`speechbrain_ext.serving.demo`; this module keeps the command's name.
"""

import sys

from speechbrain_ext.serving.demo import main

if __name__ == "__main__":
    sys.exit(main())
