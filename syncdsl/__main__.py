"""`python -m syncdsl`."""

from syncdsl.cli import main

main()
