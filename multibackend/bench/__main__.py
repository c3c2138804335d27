"""`python -m multibackend.bench`: the benchmark's command line (see `command`)."""

import sys

from multibackend.bench.command import main

sys.exit(main())
