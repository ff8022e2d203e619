//! The default seccomp profile (same semantics as Docker's and Podman's),
//! compiled to BPF in the parent with libseccomp; the child only loads it.
