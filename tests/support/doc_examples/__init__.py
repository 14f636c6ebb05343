"""Small worker programs in the shape user code takes (basic setup, several workflow types, a custom
logger, graceful shutdown, OS signals, a remote server) as runnable scripts; ``handlers.py`` fills in the
handlers they leave out."""
