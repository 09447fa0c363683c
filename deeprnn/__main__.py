"""`python -m deeprnn ...` (and `torchrun -m deeprnn ...`) run the CLI."""

import sys

from deeprnn.cli import main

sys.exit(main())
