"""`python -m rbe_edge`: see rbe_edge.cli."""
import sys

from rbe_edge.cli import main

sys.exit(main())
