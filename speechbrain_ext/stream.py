"""``python -m speechbrain_ext.stream``: classify a live stream (stdin PCM) or a file, one decision per hop.

The code lives in :mod:`speechbrain_ext.serving.stream_cli` (the streaming itself in
:mod:`speechbrain_ext.serving.streaming`); this module keeps the command's name.
"""

import sys

from speechbrain_ext.serving.stream_cli import main

if __name__ == "__main__":
    sys.exit(main())
