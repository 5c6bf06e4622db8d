"""The generation strategy (four per-step schedule vectors), its files and the named zoo."""
