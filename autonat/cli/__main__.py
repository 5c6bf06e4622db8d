"""``python -m autonat.cli``."""
import sys

from autonat.cli.main import main

sys.exit(main())
