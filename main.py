"""Start the clipdesk desktop app: `python main.py [--demo] [--model ARCH --pretrained TAG|FILE|none]`."""

import sys

from clipdesk.qt.app import main

if __name__ == "__main__":
    sys.exit(main())
