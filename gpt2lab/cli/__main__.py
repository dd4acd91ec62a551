"""``python -m gpt2lab.cli``: the same as the ``gpt2lab`` command."""
import sys

from gpt2lab.cli import main

sys.exit(main())
