//! Container records under the user's runtime and data directories.
