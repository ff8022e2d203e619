//! A detached container's log, in Docker's json-file format: one JSON
//! object per line, `{"log":"...","stream":"stdout|stderr","time":"RFC
//! 3339 nano"}`, so the two streams stay apart and in the order the
//! supervisor read them. The supervisor writes it; `hutch logs` reads it.

use std::io::Write;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// The entries of one read: a record per line (newline kept), and one
/// for a trailing partial line, as Docker splits them. Bytes that are
/// not UTF-8 become U+FFFD, as in Docker.
pub fn entries(stream: Stream, bytes: &[u8], time: &str) -> Vec<Entry> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|line| Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: time.to_string(),
        })
        .collect()
}

/// Appends what a stream produced, one JSON line per entry, in one write.
pub fn append(out: &mut impl Write, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
    let time = crate::clock::rfc3339(crate::clock::now());
    let mut buf = Vec::with_capacity(bytes.len() + 64);
    for e in entries(stream, bytes, &time) {
        serde_json::to_writer(&mut buf, &e)?;
        buf.push(b'\n');
    }
    out.write_all(&buf)
}

/// Parses complete lines of a log; a line that is not an entry (a torn
/// write after a crash) is skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_round_trip() {
        let mut out = Vec::new();
        append(&mut out, Stream::Stdout, b"one\ntwo\npart").unwrap();
        append(&mut out, Stream::Stderr, b"err \"q\"\n\xff\n").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 5);
        let got: Vec<(String, Stream)> = parse(&text)
            .into_iter()
            .map(|e| (e.log, e.stream))
            .collect();
        let want = [
            ("one\n", Stream::Stdout),
            ("two\n", Stream::Stdout),
            ("part", Stream::Stdout),
            ("err \"q\"\n", Stream::Stderr),
            ("\u{fffd}\n", Stream::Stderr),
        ];
        assert_eq!(
            got,
            want.map(|(l, s)| (l.to_string(), s)).to_vec(),
            "{text}"
        );
        assert!(text.contains(r#""stream":"stderr""#));
    }

    #[test]
    fn torn_and_empty_lines_are_skipped() {
        let text = "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"log\":\"b\n\n";
        assert_eq!(parse(text).len(), 1);
        assert!(entries(Stream::Stdout, b"", "t").is_empty());
    }
}
