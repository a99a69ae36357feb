import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI is still importing: as quiet as one later on
    print("clipdesk: interrupted.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
