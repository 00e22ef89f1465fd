"""The ``cyborg-smartnic`` command: thin argparse glue over the library."""
