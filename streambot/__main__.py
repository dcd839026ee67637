import sys

from streambot.cli import main

sys.exit(main())
