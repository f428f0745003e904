"""``python -m crawler`` is the same program as the ``spotify-crawler`` script."""

import sys

from crawler.cli import main

sys.exit(main())
