"""File-system rules every room trusts with user files, one module for each:

- ``identity``: the one Fingerprint of a file's content, its Identity (which file, what state), its
  whole-content hash.
- ``safe_write``: ``atomic_write`` (old content or new, never half), syncing, owner-only modes.
- ``publish``: a complete file takes its real name without ever overwriting one (hard links, with a
  fallback where there are none); numbered names, moves across file systems, moving a file aside.
- ``names``: names that fit the file system, numbered names.
- ``incoming``: names of files still being written, video names, files held open for writing.
- ``folders``: free space, containment, removing a tree.
"""
