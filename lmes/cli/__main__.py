import sys

from lmes.cli import main

sys.exit(main())
