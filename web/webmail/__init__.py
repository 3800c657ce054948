"""The webmail: reading, writing and following messages in a browser."""
