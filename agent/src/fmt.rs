//! `agent fmt [-w|-t] [CONFIG_FILE]`: prints or rewrites a configuration file in the
//! canonical format ([`crate::config::format`] owns the rules).
//!
//! It owns the command's file handling: standard input with `-` or no file, writing back
//! with `-w` (only when something changes, through a temporary file renamed over the
//! original so a crash never leaves half a file, keeping its permissions), and `-t` (exit 1
//! when the file is not formatted). A file with a syntax error is never written.

use std::io::{Read, Write};
use std::path::Path;

use crate::cli::FmtArgs;
use crate::config::{format::format, CONFIG_SIZE_MAX_BYTES};

/// Runs the command; `Err` carries the message for standard error (exit status 1).
pub fn run(args: &FmtArgs, stdout: &mut dyn Write) -> Result<(), String> {
    let path = args.config_file.as_deref().filter(|p| *p != Path::new("-"));
    let (src, name) = match path {
        None => {
            if args.write {
                return Err("fmt: -w needs a file; standard input cannot be written back".into());
            }
            let mut src = String::new();
            std::io::stdin()
                .take(CONFIG_SIZE_MAX_BYTES + 1)
                .read_to_string(&mut src)
                .map_err(|e| format!("<stdin>: cannot read: {e}"))?;
            (src, "<stdin>".to_string())
        }
        Some(p) => (read(p)?, p.display().to_string()),
    };
    if src.len() as u64 > CONFIG_SIZE_MAX_BYTES {
        return Err(format!(
            "{name}: larger than {CONFIG_SIZE_MAX_BYTES} bytes; not formatted"
        ));
    }
    let formatted = format(&src, &name).map_err(|e| e.to_string())?;
    let changed = formatted != src;
    if args.test {
        return match changed {
            true => Err(format!("{name}: not formatted (run `agent fmt -w {name}`)")),
            false => Ok(()),
        };
    }
    match path {
        Some(p) if args.write => {
            if changed {
                write_back(p, &formatted)?;
            }
            Ok(())
        }
        _ => stdout
            .write_all(formatted.as_bytes())
            .map_err(|e| format!("cannot write the result: {e}")),
    }
}

fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if meta.is_dir() {
        return Err(format!(
            "{shown}: is a directory; give a configuration file"
        ));
    }
    if meta.len() > CONFIG_SIZE_MAX_BYTES {
        return Err(format!(
            "{shown}: {} bytes, larger than {CONFIG_SIZE_MAX_BYTES}; not formatted",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("{shown}: not UTF-8: {e}"))
}

/// Replaces the file's content: a temporary file beside it, synced, then renamed over it.
fn write_back(path: &Path, text: &str) -> Result<(), String> {
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.agent-fmt.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        let perms = std::fs::metadata(path)?.permissions();
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{shown}: cannot write the formatted file: {e}")
    })
}
