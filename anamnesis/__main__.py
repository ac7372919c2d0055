"""`python -m anamnesis` runs the command line."""

from anamnesis.cli import main

raise SystemExit(main())
