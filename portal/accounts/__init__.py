"""Staff accounts: sign-in, passwords, API tokens."""
