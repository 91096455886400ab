# Not implemented yet: see the issue for this role area.
