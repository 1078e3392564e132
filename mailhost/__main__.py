"""``python -m mailhost`` runs the command line."""

from mailhost.cli import main

main()
