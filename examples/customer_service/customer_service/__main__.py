"""``python -m customer_service init``: the first-run setup."""

from __future__ import annotations

import argparse
import secrets

from customer_service.settings import PREFIX, Settings
from customer_service.startup import first_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer_service")
    parser.add_argument("command", choices=["init"], help="create the key file and the tables")
    parser.parse_args(argv)
    settings = Settings.from_env()
    if first_run(settings):
        print(f"created {settings.key_file} (mode 0600): back it up apart from the database")
    else:
        print(f"{settings.key_file} exists; kept it")
    print("tables ready")
    if not settings.audit_key:
        print(f"set {PREFIX}AUDIT_KEY before starting the service, for example to a new key:")
        print(f"export {PREFIX}AUDIT_KEY={secrets.token_hex(32)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
