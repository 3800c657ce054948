"""directory_ldap layer (see DESIGN.md)."""
