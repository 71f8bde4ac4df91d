import sys

from hpc_brunel.cli import main

sys.exit(main())
