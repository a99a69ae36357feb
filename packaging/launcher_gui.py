"""Windows' console-less `clipdesk-gui.exe` (see clipdesk.spec): the window, nothing else."""

import sys

from launcher import run_window

if __name__ == "__main__":
    sys.exit(run_window(sys.argv[1:]))
