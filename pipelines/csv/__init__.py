"""Bring your own data: any CSV with a label column, no code to write (--pipeline csv)."""
