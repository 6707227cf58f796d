"""``python -m napari_genprior.cli``: the ``napari-genprior`` command."""

import sys

from . import main

sys.exit(main())
