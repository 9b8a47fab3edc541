"""The `hapo-train` command."""

import argparse
import sys

import hapo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapo-train",
        description="Train cooperative heterogeneous agents with HAPPO or HATRPO.",
    )
    parser.add_argument("--version", action="version", version=f"hapo {hapo.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
