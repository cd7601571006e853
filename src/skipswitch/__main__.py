"""``python -m skipswitch``: the command line, as torchrun's ``-m skipswitch`` starts it."""

from .cli import main

if __name__ == "__main__":
    main()
