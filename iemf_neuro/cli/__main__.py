import sys

from iemf_neuro.cli import main

sys.exit(main())
