"""``python -m minibert4rec ...`` runs the command line (see cli.py)."""

import sys

from .apps.cli import main

sys.exit(main())
