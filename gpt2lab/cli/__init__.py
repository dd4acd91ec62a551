"""The ``gpt2lab`` command. Each subcommand lives in the module of its concept, which defines
``register(subparsers)``; this file only lists them."""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

# modules that add subcommands (each has register(subparsers) setting func=handler)
SUBCOMMAND_MODULES = [
    "gpt2lab.cli.generate",  # generate, batch
    "gpt2lab.cli.serve",  # serve
    "gpt2lab.cli.finetune",  # finetune
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt2lab", description="Tools from the gpt2lab course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # that part of gpt2lab is not there (yet)
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, LookupError) as err:  # user errors: one clear line, no traceback
        print(f"gpt2lab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
