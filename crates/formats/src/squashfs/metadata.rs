//! Metadata blocks: the inode, directory, fragment, id, export and xattr
//! tables are streams cut into 8 KiB pieces, each compressed on its own
//! behind a two-byte header (its stored length, bit 15 set when stored
//! uncompressed).

use std::io;

use super::compress::{Block, Engine};

/// The uncompressed size of a metadata block.
pub(crate) const METADATA_SIZE: usize = 8192;
const UNCOMPRESSED: u16 = 0x8000;

/// A table being written: compressed blocks so far, and the uncompressed
/// rest of the current block.
#[derive(Debug, Default)]
pub(crate) struct MetaWriter {
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Where each block starts in `out`.
    starts: Vec<u64>,
}

impl MetaWriter {
    /// The position of the next byte: the offset of its block in the table,
    /// and its offset in the block's uncompressed bytes.
    pub fn pos(&self) -> (u64, u16) {
        (self.out.len() as u64, self.buf.len() as u16)
    }

    /// A reference as inodes and the superblock hold them.
    pub fn reference(&self) -> u64 {
        let (block, offset) = self.pos();
        (block << 16) | u64::from(offset)
    }

    pub fn write(&mut self, engine: &mut Engine, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = (METADATA_SIZE - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == METADATA_SIZE {
                self.flush(engine)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, engine: &mut Engine) -> io::Result<()> {
        let data = std::mem::take(&mut self.buf);
        self.starts.push(self.out.len() as u64);
        match engine.block(data, false)? {
            Block::Compressed(b) => {
                self.out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&b);
            }
            Block::Stored(b) => {
                self.out
                    .extend_from_slice(&(b.len() as u16 | UNCOMPRESSED).to_le_bytes());
                self.out.extend_from_slice(&b);
            }
            // Not asked for: metadata is never sparse.
            Block::Sparse => {}
        }
        self.buf = Vec::with_capacity(METADATA_SIZE);
        Ok(())
    }

    /// Ends the last block; returns the table's bytes and where each of its
    /// blocks starts.
    pub fn finish(mut self, engine: &mut Engine) -> io::Result<(Vec<u8>, Vec<u64>)> {
        if !self.buf.is_empty() {
            self.flush(engine)?;
        }
        Ok((self.out, self.starts))
    }
}
