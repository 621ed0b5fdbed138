import sys

from kvmpool.cli.main import main

sys.exit(main())
