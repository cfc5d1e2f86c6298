"""`python -m fusionrec`: the CLI."""

from fusionrec.cli import app

if __name__ == "__main__":
    app()
