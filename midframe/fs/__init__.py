"""File-system rules every room trusts with user files: names that fit, identity and fingerprints,
no-clobber moves, safe writes, free space."""
