"""``python -m securecustomer``: the same as the ``securecustomer`` command."""

import sys

from securecustomer.cli import main

sys.exit(main())
