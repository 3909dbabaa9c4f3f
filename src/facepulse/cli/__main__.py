import sys

from facepulse.cli import main

sys.exit(main())
