//! Reading files from the config's directory: the config itself and `!include`d bodies, opened
//! without blocking and checked after opening (regular files, inside `data/`, at most 1 MiB).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use serde_yaml::Value;

use super::fields::{describe, Errors};
use super::MAX_FILE_BYTES;

/// Opens `path` for reading without blocking and checks what was opened: a FIFO or a device
/// swapped in for a file must neither hang the daemon nor be read.
pub(super) fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_string());
    }
    Ok(file)
}

pub(crate) fn read_bounded(path: &Path) -> Result<String, String> {
    read_file(open_regular(path)?)
}

pub(super) fn read_file(file: std::fs::File) -> Result<String, String> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} bytes", MAX_FILE_BYTES));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())
}

/// The body: a literal string, or `!include <path>` (quoted or as a YAML tag).
pub(super) fn parse_body(value: Option<&Value>, place: &str, base_dir: &Path, errors: &mut Errors) -> Option<String> {
    let include_path = match value? {
        Value::String(s) => match s.trim_start().strip_prefix("!include") {
            Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim().to_string(),
            _ => return Some(s.clone()),
        },
        Value::Tagged(tagged) if tagged.tag == "include" => match &tagged.value {
            Value::String(s) => s.trim().to_string(),
            other => {
                errors.push(place, "body", format!("!include needs a path, found {}", describe(other)));
                return None;
            }
        },
        Value::Tagged(tagged) => {
            errors.push(place, "body", format!("unknown tag {} (only !include is supported)", tagged.tag));
            return None;
        }
        other => {
            errors.push(place, "body", format!("must be a string, found {}", describe(other)));
            return None;
        }
    };
    match read_include(base_dir, &include_path) {
        Ok(body) => Some(body),
        Err(e) => {
            errors.push(place, "body", format!("!include {include_path:?}: {e}"));
            None
        }
    }
}

/// Reads an included file, which must resolve (after following symlinks) to a regular file
/// inside `<config dir>/data/`. The file is opened first (without blocking) and what was opened
/// is checked, so a symlink swapped in between a check and the open cannot lead outside.
pub(crate) fn read_include(base_dir: &Path, relative: &str) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    if relative.is_empty() {
        return Err("empty path".to_string());
    }
    let rel = Path::new(relative);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::Prefix(_) | Component::RootDir)) {
        return Err("absolute paths are not allowed; give a path under data/".to_string());
    }
    let data_dir = base_dir.join("data");
    let data_dir =
        data_dir.canonicalize().map_err(|e| format!("the data/ folder beside the config cannot be opened: {e}"))?;
    let path = base_dir.join(rel);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let opened = file.metadata().map_err(|e| format!("cannot open: {e}"))?;
    let target = path.canonicalize().map_err(|e| format!("cannot open: {e}"))?;
    if !target.starts_with(&data_dir) || target == data_dir {
        return Err(
            "resolves outside the data/ folder beside the config (.. and symlinks may not escape it)".to_string()
        );
    }
    // The file opened must be the one found inside data/, not one swapped in meanwhile.
    let found = std::fs::metadata(&target).map_err(|e| format!("cannot open: {e}"))?;
    if (found.dev(), found.ino()) != (opened.dev(), opened.ino()) {
        return Err("changed while it was being opened; try again".to_string());
    }
    if !opened.is_file() {
        return Err("is not a regular file".to_string());
    }
    read_file(file)
}
