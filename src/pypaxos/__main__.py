import sys

from pypaxos.cli.main import main

sys.exit(main())
