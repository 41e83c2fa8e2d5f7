"""Wait until every URL answers 200 (standard library only): `wait_ready.py [--timeout S] URL...`."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request


def wait(urls: list[str], timeout: float) -> list[str]:
    """Return the URLs still not answering 200 when the timeout ran out (empty when all are ready)."""
    pending = list(urls)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        pending.remove(url)
            except OSError:
                pass
        if pending:
            time.sleep(0.3)
    return pending


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    pending = wait(args.urls, args.timeout)
    if pending:
        print(f"wait_ready: not ready after {args.timeout:.0f}s: {' '.join(pending)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
