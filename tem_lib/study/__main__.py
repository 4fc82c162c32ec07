import sys

from .cli import _main

sys.exit(_main())
