"""`python -m fakecloud TOOL ARGS...`: run one fake tool (tests/deploy/bin/ holds the wrappers)."""

import sys

from fakecloud.platform import main

sys.exit(main(sys.argv[1:]))
