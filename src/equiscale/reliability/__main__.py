"""``python -m equiscale.reliability``: regenerate results/reliability.md."""

import sys

from equiscale.reliability.report import main

sys.exit(main())
