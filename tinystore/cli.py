"""Command line: ``python -m tinystore demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinystore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="save, browse and load a realistic simulation job")
    demo.add_argument("--dir", help="where to write the demo files (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from tinystore.demo import run

        return run(args.dir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
