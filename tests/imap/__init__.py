"""Tests of the IMAP layer."""
