//! Layer compression: detection (magic bytes first, then the media type)
//! and decompressing readers. Shared by unpacking and the image store.

use std::io::Read;

use anyhow::Context;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The magic bytes win over the media type: some registries label
    /// plain tars as gzip and the other way round.
    pub fn detect(media_type: &str, head: &[u8]) -> Compression {
        if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.len() < ZSTD_MAGIC.len() && media_type.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// A reader of the decompressed bytes of `r`.
    pub fn reader<'a, R: Read + 'a>(self, r: R) -> anyhow::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(r).context("start zstd decoder")?)
            }
        })
    }

    /// The OCI media type of a layer with this compression.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_and_round_trips() {
        let tar = b"plain tar bytes".to_vec();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
        for (bytes, media, want) in [
            (
                &tar,
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::None,
            ),
            (
                &gz,
                "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip,
            ),
            (
                &zst,
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd,
            ),
        ] {
            let c = Compression::detect(media, &bytes[..8.min(bytes.len())]);
            assert_eq!(c, want);
            let mut out = Vec::new();
            c.reader(&bytes[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, tar);
        }
        assert_eq!(Compression::detect("x+zstd", b""), Compression::Zstd);
        // Corrupt zstd is an error, not a panic.
        let mut out = Vec::new();
        assert!(Compression::Zstd
            .reader(&b"\x28\xb5\x2f\xfdjunk"[..])
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }
}
