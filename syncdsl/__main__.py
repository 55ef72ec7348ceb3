"""`python -m syncdsl`."""

from syncdsl.cli.core import main

main()
