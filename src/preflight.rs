//! What this host can do, probed once: user namespaces, subordinate ids,
//! the setuid helpers, overlay, FUSE, network helpers, cgroups, directories.
//! Used by `hutch doctor` (every check, with its fix) and by `run`.
