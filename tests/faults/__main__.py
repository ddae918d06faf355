"""`python -m tests.faults`: run the fault suite and print its table."""

import sys

from tests.faults.suite import main

sys.exit(main())
