"""One module per ``edgerl`` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
