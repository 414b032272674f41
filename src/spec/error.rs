//! Errors in experiment files: each carries the file, the span and the dotted key it is
//! about. `Display` writes `file:line:col: message`, then the source line with `^^^`.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// A file that was read, kept so errors can quote it.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A place in an experiment file.
#[derive(Debug, Clone)]
pub struct Location {
    pub source: Arc<Source>,
    pub span: Range<usize>,
}

impl Location {
    pub fn new(source: &Arc<Source>, span: Range<usize>) -> Self {
        Self {
            source: Arc::clone(source),
            span,
        }
    }

    /// 1-based line and column (in characters) of the span's start.
    pub fn line_col(&self) -> (usize, usize) {
        let text = &self.source.text;
        let start = self.span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..start].chars().count() + 1;
        (line, col)
    }
}

#[derive(Debug, Clone)]
pub struct SpecError {
    pub message: String,
    /// Dotted path of the key the error is about, e.g. `tasks.tfidf.max_features`.
    pub key: Option<String>,
    pub location: Option<Location>,
    /// Extra lines such as a cycle's members or "did you mean".
    pub notes: Vec<String>,
}

impl SpecError {
    pub fn at(location: &Location, key: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: key.into(),
            location: Some(location.clone()),
            notes: Vec::new(),
        }
    }

    pub fn without_location(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
            location: None,
            notes: Vec::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.location.as_ref().map(Location::line_col)
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(location) = &self.location else {
            write!(f, "{}", self.message)?;
            for note in &self.notes {
                write!(f, "\n  = note: {note}")?;
            }
            return Ok(());
        };
        let (line, col) = location.line_col();
        write!(f, "{}:{line}:{col}: {}", location.source.path.display(), self.message)?;
        if let Some(key) = &self.key {
            write!(f, "\n  key: {key}")?;
        }
        if let Some(text) = location.source.text.lines().nth(line - 1) {
            let gutter = line.to_string().len();
            let start = text.char_indices().nth(col - 1).map_or(text.len(), |(i, _)| i);
            let span_len = location.span.len().max(1);
            let width = text[start..]
                .char_indices()
                .take_while(|(i, _)| *i < span_len)
                .count()
                .max(1);
            write!(
                f,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
                "",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            )?;
        }
        for note in &self.notes {
            write!(f, "\n  = note: {note}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}
