"""`python -m cass` is the `cass` command."""

from cass.cli import main

main()
