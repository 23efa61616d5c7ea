#!/usr/bin/env python3
"""Pack an ONNX model into an rbe_edge bundle; `tools/pack.py --help` lists every option."""
import argparse
import sys

from rbe_edge.cli import PACK_DESCRIPTION, add_pack_arguments, main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tools/pack.py", description=PACK_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    add_pack_arguments(parser)
    parser.set_defaults(run=_run_pack)
    return parser


def _run_pack(args) -> int:
    from rbe_edge.cli import run_pack

    return run_pack(args)


if __name__ == "__main__":
    sys.exit(main(parser=build_parser()))
