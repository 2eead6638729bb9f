"""`python -m aigckit` runs the command line."""

from .cli import main

main()
