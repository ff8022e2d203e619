//! Writing the id maps of a child process.
