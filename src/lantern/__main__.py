"""``python -m lantern`` runs the command line."""

from lantern.cli.main import main

main()
