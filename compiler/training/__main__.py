"""``python -m compiler.training SPEC ...`` is ``netc train SPEC ...``: the entry a
torchrun worker runs (``torchrun --nproc_per_node=2 -m compiler.training SPEC ...``)."""

import sys

from compiler.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
