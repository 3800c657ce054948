"""The mailbox store (``mailstore``): folders, messages, flags, folder indexes and search.

The one interface the IMAP server and the webmail both read and write through
(DESIGN.md §2): it sits below the front-ends, so neither imports the other.
"""
