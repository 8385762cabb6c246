"""`python -m crewq` runs the CLI."""

from crewq.scheduler.cli import main

if __name__ == "__main__":
    main()
