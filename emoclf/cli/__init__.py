"""The command line: argparse subcommands that call the library and turn its errors into exit codes."""
