"""`python -m deblurgan_hf ...` is the `deblurgan` command."""

import sys

from .cli import main

sys.exit(main())
