"""``python -m speechbrain_ext.transcribe``: Whisper transcripts of a manifest, cached for the text recipes.

The code lives in :mod:`speechbrain_ext.data.transcribe`; this module keeps the command's name.
"""

import sys

from speechbrain_ext.data.transcribe import main

if __name__ == "__main__":
    sys.exit(main())
