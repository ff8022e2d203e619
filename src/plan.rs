//! The plan: every decision of `hutch run`, as plain data. Pure.
