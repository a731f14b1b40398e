import sys

from soartlab.cli import main

sys.exit(main())
