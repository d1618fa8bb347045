"""``python -m dsc`` (also what ``accelerate launch -m dsc`` runs)."""

from dsc.cli.main import main

if __name__ == "__main__":
    main()
