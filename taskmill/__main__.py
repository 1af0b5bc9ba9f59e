"""`python -m taskmill`: the `taskmill` command."""

from .cli import main

main()
