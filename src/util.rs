//! Small shared helpers: struct field introspection, file digests, atomic writes.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names of a `#[derive(Deserialize)]` struct, read from what serde passes to
/// `deserialize_struct`, so parameter structs stay the single source of their names.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct FieldsProbe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for FieldsProbe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("field probe"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldsProbe(&mut fields));
    fields
}

/// serde reports an unknown field only in its message (the path stops at the parent):
/// recover the field's name from it.
pub fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// blake3 of a file's content, hex.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap(path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// blake3 of a file, or of a folder's files (top level, by name; hidden files skipped):
/// a model folder's digest covers its config, weights and tokenizer.
pub fn path_digest(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return file_digest(path);
    }
    let mut entries: Vec<(String, std::path::PathBuf)> = fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    entries.sort();
    let mut hasher = blake3::Hasher::new();
    for (name, file) in entries {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(file_digest(&file)?.as_bytes());
        hasher.update(&[0]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so readers see the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// Now as RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Now as `20261123T091500.123`, UTC: sorts by time, safe in file names.
pub fn timestamp_compact() -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// Seconds as a short human string: `4.2 ms`, `1.42 s`, `12.3 s`, `4 m 05 s`.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let whole = seconds.round() as u64;
        format!("{} m {:02} s", whole / 60, whole % 60)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("{} h {:02} m", minutes / 60, minutes % 60)
    }
}

/// `1536 MiB` → `1.5 GiB`: binary units, as `free -h` and `top` show memory.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Makes glibc's malloc keep freed memory in the process instead of returning it to the
/// system at once. A training step allocates and frees the same large activation tensors
/// every step (libtorch's CPU allocator is malloc); by default glibc maps blocks over its
/// mmap threshold fresh each time and trims the heap eagerly, so every step pays the kernel
/// to fault in and zero those pages again. With the threshold at glibc's maximum (32 MiB)
/// and the heap trimmed only above 1 GiB free, the pages are reused (`orchestrate bench-step`
/// measures the step with and without: docs/performance.md). The price is memory: the heap
/// holds freed blocks for reuse (up to 1 GiB above what is live, plus 64 MiB of padding), so
/// the peak RSS rises by a fraction of a GiB. Does nothing off glibc, or when `MALLOC_*`
/// tuning variables or `GLIBC_TUNABLES` are set (the user's choice wins: setting any
/// `MALLOC_` variable, e.g. `MALLOC_ARENA_MAX=8`, restores glibc's defaults otherwise).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_tuned = std::env::vars_os().any(|(name, _)| {
            let name = name.to_string_lossy();
            name.starts_with("MALLOC_") || name == "GLIBC_TUNABLES"
        });
        if user_tuned {
            return;
        }
        // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}

/// Gives the kernel back the freed memory malloc holds (glibc's `malloc_trim`, which also
/// releases free pages inside the heap): between tasks, so that what [`keep_freed_memory`]
/// kept for one task does not count in the next one's peak RSS.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        alpha: f64,
        #[serde(rename = "max_iter")]
        iterations: u32,
    }

    #[test]
    fn struct_fields_reads_serde_names() {
        assert_eq!(struct_fields::<Probe>(), &["alpha", "max_iter"]);
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
