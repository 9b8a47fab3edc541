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
    parser.add_argument("--list-envs", action="store_true", help="print every environment and partition, then exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_envs:
        from hapo.envs import print_task_table

        print_task_table()
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
