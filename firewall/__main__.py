"""`python -m firewall`: the same command as the `firewall` script."""

from firewall.cli.main import main

if __name__ == "__main__":
    main()
