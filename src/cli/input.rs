//! Reading the offline commands' input files (`--baseline`, `--input`, `--file`), bounded: only
//! a regular file or `-` (stdin) is read, and at most [`MAX_INPUT_BYTES`] of it, so `/dev/zero`,
//! a FIFO or a huge file ends with a clear error instead of hanging or exhausting memory.
//! (Nesting depth is bounded by the YAML parser's budget, [`super::yaml`].)

use std::io::Read as _;
use std::path::Path;

/// Largest input file the offline commands read (64 MiB); a node's saved packages are a few MiB.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A device, FIFO, socket or directory.
    #[error("not a regular file (a {0}); give a file, or `-` for stdin")]
    NotRegular(&'static str),
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Reading failed (missing file, permissions, not UTF-8).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl InputError {
    /// True when the input was refused (invalid input, exit status 2) rather than unreadable.
    pub fn is_refused(&self) -> bool {
        !matches!(self, InputError::Io(_))
    }
}

/// Read `path` (`-` for stdin) as UTF-8 text, bounded (see the module docs).
pub fn read_input(path: &Path) -> Result<String, InputError> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut text = String::new();
    if path == Path::new("-") {
        bounded_read(std::io::stdin().lock(), &mut text)?;
        return Ok(text);
    }
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(InputError::NotRegular(if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "device"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        }));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            limit: MAX_INPUT_BYTES,
        });
    }
    bounded_read(file, &mut text)?;
    Ok(text)
}

fn bounded_read(reader: impl std::io::Read, text: &mut String) -> Result<(), InputError> {
    reader.take(MAX_INPUT_BYTES + 1).read_to_string(text)?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            limit: MAX_INPUT_BYTES,
        });
    }
    Ok(())
}
