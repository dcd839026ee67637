#!/usr/bin/env python3
"""Build the engines a config uses: ``python build_engines.py --config config.toml``.

Thin on purpose: the work lives in ``streambot/compress`` and ``streambot/runtime``; the same
command is ``python -m streambot engines build``. ``--help`` lists the flags.
"""

import sys

from streambot.compress.build import main

if __name__ == "__main__":
    sys.exit(main())
