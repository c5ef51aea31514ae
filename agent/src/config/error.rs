//! Configuration errors: every error a user can act on says where (`file:line:col`), what was
//! wrong and what was expected. Owns no parsing logic.

use std::fmt;

/// A position in the source: 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Io { file: String, message: String },
    /// The file was read but its content is wrong at `pos`.
    At {
        file: String,
        pos: Pos,
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn at(file: &str, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::At {
            file: file.to_string(),
            pos,
            message: message.into(),
        }
    }

    /// The position of the error, when it has one.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::At { pos, .. } => Some(*pos),
        }
    }

    /// The message without the location prefix.
    pub fn message(&self) -> &str {
        match self {
            ConfigError::Io { message, .. } | ConfigError::At { message, .. } => message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { file, message } => write!(f, "{file}: {message}"),
            ConfigError::At { file, pos, message } => {
                write!(f, "{file}:{}:{}: {message}", pos.line, pos.col)
            }
        }
    }
}

impl std::error::Error for ConfigError {}
