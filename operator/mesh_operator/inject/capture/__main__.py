"""``python -m mesh_operator.inject.capture``: the capture init container's entry point."""

import sys

from mesh_operator.inject.capture import main

sys.exit(main())
