"""`python -m rvpo_repro.sweep`: the same command as `rvpo-sweep`."""

import sys

from rvpo_repro.sweep.plan import main

sys.exit(main())
