import sys

from placelink.cli import main

sys.exit(main())
