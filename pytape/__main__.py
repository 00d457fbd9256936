"""``python -m pytape COMMAND``: pytape's command line.

Commands:
  bench    time pytape against other scalar autodiff engines (``pytape.bench.cli``)
"""
import sys

USAGE = """usage: python -m pytape COMMAND [options]

commands:
  bench    time pytape against other autodiff engines; see `python -m pytape bench --help`
           [--quick | --full] [--repeat N] [--engine MODULE:CLASS] [--engines LIST] [--workloads LIST]
"""


def main(argv=None):
    """Dispatch to a command; usage and status 2 for no or an unknown command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":
        from .bench.cli import main as bench

        return bench(argv[1:])
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv:
        print(f"python -m pytape: unknown command {argv[0]!r}", file=sys.stderr)
    print(USAGE, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
