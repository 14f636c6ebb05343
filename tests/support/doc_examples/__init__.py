"""The Worker page's code examples as runnable scripts (the "register handlers" parts filled in)."""
