//! The inputs a command line names: files, standard input (`-`) and
//! directories, expanded into the captures to read, each once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the inputs named came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The inputs to read, in the order named (a directory's sorted by path).
    /// A named file is always read, whatever its name, so that one that is
    /// missing or not a capture is said to be so.
    pub files: Vec<PathBuf>,
    /// Files a directory scan passed over: not captures by their name.
    pub skipped: Vec<PathBuf>,
    /// Subdirectories not entered (no `--recursive`).
    pub subdirectories: Vec<PathBuf>,
    /// Inputs named more than once, read once: (the one dropped, the one kept).
    pub duplicates: Vec<(PathBuf, PathBuf)>,
    /// Directories that could not be listed, and why.
    pub unlisted: Vec<(PathBuf, String)>,
    /// Directories met again during a scan (a symbolic link to a directory
    /// already scanned, a link loop), not entered: (the path met, the path
    /// it was scanned under).
    pub revisited: Vec<(PathBuf, PathBuf)>,
    /// Entries named as captures that are not regular files (a FIFO, a
    /// socket, a device), not read, and what they are: reading a FIFO
    /// nobody writes to would wait forever. Named on the command line, a
    /// FIFO is read (a pipe is an input).
    pub not_regular: Vec<(PathBuf, &'static str)>,
}

/// Extensions of capture files, compressed or not (`.pcap`, `.pcapng.zst`).
const CAPTURE_EXTENSIONS: [&str; 4] = ["pcap", "pcapng", "cap", "ntar"];
const COMPRESSED_EXTENSIONS: [&str; 3] = ["gz", "zst", "zstd"];

/// The file's name says it is a capture: `x.pcap`, `x.pcapng`, `x.cap`,
/// `x.ntar`, each maybe followed by `.gz`, `.zst` or `.zstd`.
pub fn is_capture_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let name = name.to_ascii_lowercase();
    let base = COMPRESSED_EXTENSIONS
        .iter()
        .find_map(|c| name.strip_suffix(c).and_then(|b| b.strip_suffix('.')))
        .unwrap_or(&name);
    CAPTURE_EXTENSIONS.iter().any(|e| base.strip_suffix(e).is_some_and(|b| b.len() > 1 && b.ends_with('.')))
}

/// Expands `paths`: a directory into the captures it holds (and, with
/// `recursive`, those of its subdirectories); `-` is standard input. The
/// same file named twice (by any path) is kept once.
pub fn expand(paths: &[PathBuf], recursive: bool) -> Inputs {
    let mut out = Inputs::default();
    // Files by identity (canonical path), with the path they were kept under.
    let mut seen: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut keep = |out: &mut Inputs, p: PathBuf| {
        let id = if p.as_os_str() == super::STDIN_PATH { p.clone() } else { p.canonicalize().unwrap_or(p.clone()) };
        match seen.get(&id) {
            Some(first) => out.duplicates.push((p, first.clone())),
            None => {
                seen.insert(id, p.clone());
                out.files.push(p);
            }
        }
    };
    // Directories scanned, over every path named, so none is scanned twice.
    let mut scanned = HashMap::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            scan(p, recursive, &mut found, &mut out, &mut scanned);
            found.sort();
            for f in found {
                keep(&mut out, f);
            }
        } else {
            keep(&mut out, p.clone());
        }
    }
    out
}

/// What tells directories apart however they are reached (through any
/// symbolic link or bind mount): device and inode.
#[cfg(unix)]
type DirId = (u64, u64);
#[cfg(not(unix))]
type DirId = PathBuf;

#[cfg(unix)]
fn dir_id(dir: &Path) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_id(dir: &Path) -> Option<DirId> {
    dir.canonicalize().ok()
}

/// What a file that is not a regular one is, for the message that says it
/// was skipped; None for a regular file, or one that cannot be looked at
/// (opening it says why).
fn not_regular(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
    }
    Some("not a regular file")
}

/// Collects the captures of `dir` into `found` (and its subdirectories'
/// with `recursive`). `scanned` holds the directories scanned so far, with
/// the path each was scanned under: one met again is not entered, so a
/// symbolic link loop ends at once.
fn scan(
    dir: &Path,
    recursive: bool,
    found: &mut Vec<PathBuf>,
    out: &mut Inputs,
    scanned: &mut HashMap<DirId, PathBuf>,
) {
    if let Some(id) = dir_id(dir) {
        if let Some(first) = scanned.get(&id) {
            out.revisited.push((dir.to_path_buf(), first.clone()));
            return;
        }
        scanned.insert(id, dir.to_path_buf());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.unlisted.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if recursive {
                scan(&p, recursive, found, out, scanned);
            } else {
                out.subdirectories.push(p);
            }
        } else if is_capture_name(&p) {
            match not_regular(&p) {
                Some(kind) => out.not_regular.push((p, kind)),
                None => found.push(p),
            }
        } else {
            out.skipped.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_with_and_without_compression() {
        for yes in ["a.pcap", "a.PCAPNG", "a.cap", "dir/b.pcap.gz", "c.pcapng.zst", "d.pcap.zstd", "e.ntar"] {
            assert!(is_capture_name(Path::new(yes)), "{yes}");
        }
        for no in ["a.json", "a.keylog", "pcap", ".pcap", "a.gz", "a.pcap.bak", "a.truth.json", "apcap"] {
            assert!(!is_capture_name(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn directories_recursion_skips_and_duplicates() -> std::io::Result<()> {
        let d = tempfile::tempdir()?;
        let root = d.path();
        std::fs::create_dir(root.join("sub"))?;
        for f in ["b.pcap", "a.pcapng.gz", "notes.txt", "sub/c.cap", "sub/d.json"] {
            std::fs::write(root.join(f), b"x")?;
        }
        let flat = expand(&[root.to_path_buf()], false);
        assert_eq!(flat.files, vec![root.join("a.pcapng.gz"), root.join("b.pcap")]);
        assert_eq!(flat.skipped, vec![root.join("notes.txt")]);
        assert_eq!(flat.subdirectories, vec![root.join("sub")]);
        let deep = expand(&[root.to_path_buf()], true);
        assert_eq!(deep.files, vec![root.join("a.pcapng.gz"), root.join("b.pcap"), root.join("sub/c.cap")]);
        assert_eq!(deep.skipped, vec![root.join("notes.txt"), root.join("sub/d.json")]);
        // Named twice, once through another path: read once.
        let twice = expand(&[root.join("b.pcap"), root.join("sub/../b.pcap"), root.to_path_buf()], false);
        assert_eq!(twice.files, vec![root.join("b.pcap"), root.join("a.pcapng.gz")]);
        assert_eq!(twice.duplicates.len(), 2);
        // A named file is kept whatever its name, and even when missing.
        let named = expand(&[root.join("notes.txt"), root.join("missing.pcap")], false);
        assert_eq!(named.files.len(), 2);
        Ok(())
    }
}
