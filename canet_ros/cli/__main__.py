"""``python -m canet_ros.cli``: the same as the ``canet`` command."""
import sys

from . import main

sys.exit(main())
