"""`python -m pysdk._deployment MODULE:ATTR [--host] [--port] [--identity-key KEY ...] [--ready-file PATH]`."""
import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m pysdk._deployment"))
