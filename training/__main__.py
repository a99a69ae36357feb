"""`python -m training finetune|evaluate …`; also `torchrun --nproc_per_node=N -m training finetune …`."""

import sys

try:
    from training.cli import main
except KeyboardInterrupt:  # Ctrl-C while still importing torch: no traceback
    print("training: interrupted.", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
