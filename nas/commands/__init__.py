"""One module per ``nas`` sub-command: ``add_parser(subparsers)`` and ``run(args) -> int``."""
