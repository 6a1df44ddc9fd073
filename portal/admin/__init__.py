"""Administrator pages: staff accounts, API tokens, the audit trail."""
