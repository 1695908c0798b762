"""``python -m speechbrain_ext.app --model DIR_OR_HUB_ID``: a demo page to try a model in the browser.

The page lives in :mod:`speechbrain_ext.serving.app`; this module keeps the command's name.
"""

import sys

from speechbrain_ext.serving.app import main

if __name__ == "__main__":
    sys.exit(main())
