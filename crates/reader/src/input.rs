//! Opening an input: a path or stdin, decompressed when it is gzip or zstd
//! (recognised by its first bytes, whatever the file is called).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub struct Input {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub compression: Compression,
    /// Size in bytes of the uncompressed input, when known.
    pub size_hint: Option<u64>,
    /// Size on disk, when the input is a file (for progress).
    pub file_size: Option<u64>,
    /// An uncompressed regular file, which the reader reads itself (up to its
    /// size at open, noticing if it shrinks meanwhile) instead of `reader`.
    /// The name is historical: it is no longer memory-mapped.
    pub mapped: Option<File>,
}

impl Input {
    /// Opens `path`; `-` is stdin.
    pub fn open(path: &Path) -> io::Result<Input> {
        if path == Path::new("-") {
            return Self::from_reader("<stdin>".into(), Box::new(io::stdin()), None);
        }
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        let name = path.display().to_string();
        if meta.is_file() && meta.len() > 0 {
            use std::os::unix::fs::FileExt;
            let mut magic = [0u8; 4];
            let n = file.read_at(&mut magic, 0)?;
            if compression_of(&magic[..n]) == Compression::None {
                return Ok(Input {
                    name,
                    reader: Box::new(io::empty()),
                    compression: Compression::None,
                    size_hint: Some(meta.len()),
                    file_size: Some(meta.len()),
                    mapped: Some(file),
                });
            }
        }
        Self::from_reader(name, Box::new(file), Some(meta.len()))
    }

    pub fn from_reader(
        name: String,
        reader: Box<dyn Read + Send>,
        file_size: Option<u64>,
    ) -> io::Result<Input> {
        // Sniff the magic bytes; a slow pipe may deliver them one at a time.
        let mut reader = reader;
        let mut magic = Vec::with_capacity(4);
        while magic.len() < 4 {
            let mut byte = [0u8; 4];
            let want = 4 - magic.len();
            match reader.read(&mut byte[..want]) {
                Ok(0) => break,
                Ok(n) => magic.extend_from_slice(&byte[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let compression = compression_of(&magic);
        let chained: Box<dyn Read + Send> = Box::new(io::Cursor::new(magic).chain(reader));
        let buffered = BufReader::with_capacity(1 << 20, chained);
        let reader: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        };
        let size_hint = match compression {
            Compression::None => file_size,
            // Dumps compress about 8:1; a rough hint only pre-sizes columns.
            _ => file_size.map(|s| s * 8),
        };
        Ok(Input {
            name,
            reader,
            compression,
            size_hint,
            file_size,
            mapped: None,
        })
    }
}

fn compression_of(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || is_skippable_frame(head) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A zstd skippable frame (magic 0x184D2A50 to 0x184D2A5F, little endian):
/// pzstd starts its output with one, and zstd decoders skip it.
fn is_skippable_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(compression_of(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(compression_of(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        for low in 0..16u8 {
            let magic = (0x184D2A50u32 + low as u32).to_le_bytes();
            assert_eq!(compression_of(&magic), Compression::Zstd, "{magic:x?}");
        }
        assert_eq!(
            compression_of(&0x184D2A60u32.to_le_bytes()),
            Compression::None
        );
        assert_eq!(
            compression_of(&0x184D2A4Fu32.to_le_bytes()),
            Compression::None
        );
        assert_eq!(compression_of(b"{\"ad"), Compression::None);
        assert_eq!(compression_of(&[0x50, 0x2a]), Compression::None);
    }
}
