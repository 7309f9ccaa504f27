import sys

from pypaxos.cli import main

sys.exit(main())
