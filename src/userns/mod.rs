//! User namespaces: subordinate id ranges, id-map computation, and writing
//! the maps (through newuidmap/newgidmap, or a single-id map as fallback).

pub mod idmap;
pub mod subid;
pub mod write;
