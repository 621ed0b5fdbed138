import sys

from kvmpool.cli.client import main

sys.exit(main())
