//! Path-safe file operations inside a root (openat2 RESOLVE_IN_ROOT).
