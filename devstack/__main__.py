"""`python -m devstack`: run the whole local stack (what `make dev` calls)."""

import sys

from devstack.stack import main

sys.exit(main())
