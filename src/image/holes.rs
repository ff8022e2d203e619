//! Writing file content with holes: every 4 KiB block of zeros is skipped
//! (the file offset moves on, nothing is written), and the length is set
//! at the end, so a trailing hole still counts. A layer can then declare
//! a sparse `/var/log/lastlog` of gigabytes, or gigabytes of zeros that
//! gzip shrinks ~1000:1, and the file costs only its non-zero blocks.
//!
//! Runs wherever a layer is unpacked (a user-namespace child of `hutch`).
//! Holes are what lseek(2) SEEK_HOLE reports: the kernel returns zeros for
//! ranges never written, and ftruncate(2) extends a file with a hole.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// The hole granularity: the page size and ext4/xfs/tmpfs block size.
const BLOCK: usize = 4096;
/// Bytes read per round; a multiple of [`BLOCK`], so blocks stay aligned
/// to the file offset.
const CHUNK: usize = 32 * BLOCK;

/// Copies readers into files, keeping zero blocks as holes. Holds one
/// buffer, reused for every file of a layer.
#[derive(Default)]
pub(crate) struct HoleCopier {
    buf: Vec<u8>,
}

impl HoleCopier {
    /// Copies all of `reader` into the empty `file` from offset 0;
    /// returns the bytes read, which is then the file's length.
    pub(crate) fn copy<R: Read + ?Sized>(
        &mut self,
        reader: &mut R,
        file: &File,
    ) -> io::Result<u64> {
        if self.buf.len() != CHUNK {
            self.buf = vec![0; CHUNK];
        }
        let mut pos: u64 = 0;
        let mut ends_in_hole = false;
        loop {
            let n = fill(reader, &mut self.buf)?;
            let chunk = self.buf.get(..n).unwrap_or_default();
            if !chunk.is_empty() {
                ends_in_hole = write_data(file, chunk, pos)?;
            }
            pos = pos
                .checked_add(n as u64)
                .ok_or_else(|| io::Error::other("the file is longer than 2^64 bytes"))?;
            if n < CHUNK {
                break;
            }
        }
        if ends_in_hole {
            // ftruncate(2) extends the file with a hole up to its length.
            file.set_len(pos)?;
        }
        Ok(pos)
    }
}

/// Reads until `buf` is full or the reader ends; returns how much.
fn fill<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes the non-zero blocks of `chunk` at `pos` onwards, each run of
/// them in one pwrite; returns whether the chunk ends in a zero block.
fn write_data(file: &File, chunk: &[u8], pos: u64) -> io::Result<bool> {
    let mut run: Option<usize> = None; // start of the current data run
    let mut at = 0;
    for block in chunk.chunks(BLOCK) {
        match (is_zero(block), run) {
            (false, None) => run = Some(at),
            (true, Some(start)) => {
                write_at(file, chunk.get(start..at).unwrap_or_default(), pos, start)?;
                run = None;
            }
            _ => {}
        }
        at += block.len();
    }
    match run {
        Some(start) => {
            write_at(file, chunk.get(start..).unwrap_or_default(), pos, start)?;
            Ok(false)
        }
        None => Ok(true),
    }
}

fn write_at(file: &File, data: &[u8], pos: u64, start: usize) -> io::Result<()> {
    let offset = pos
        .checked_add(start as u64)
        .ok_or_else(|| io::Error::other("the file is longer than 2^64 bytes"))?;
    file.write_all_at(data, offset)
}

/// A comparison with a zero block is libc's memcmp, vectorised in every
/// build: zero runs are the bulk of what a bomb sends.
fn is_zero(block: &[u8]) -> bool {
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    ZEROS.get(..block.len()) == Some(block)
}
