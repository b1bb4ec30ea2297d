import sys

from evgrid.cli import main

sys.exit(main())
