"""`python -m taskmill.cli`."""

from . import main

main()
