"""`python -m bench NAME [options]`: the same as `lantern bench NAME [options]`."""

from __future__ import annotations

import argparse
import sys

from bench import commands


def main(argv: list[str] | None = None) -> int:
    """Parse `NAME [options]` as `lantern bench` does and run that benchmark."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands.configure(p)
    return commands.run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
