"""``python -m benchmarks.report``."""

import sys

from benchmarks.report.document import main

sys.exit(main())
