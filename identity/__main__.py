"""``python -m identity``: the ``idgraph`` command."""

from identity.cli import main

if __name__ == "__main__":  # not when a parser process (spawn) imports the main module
    main()
