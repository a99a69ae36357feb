"""`python -m training finetune|evaluate …`; also `torchrun --nproc_per_node=N -m training finetune …`."""

import sys

from training.cli import main

if __name__ == "__main__":
    sys.exit(main())
