// STUB (replaced by the real module)
use std::path::{Path, PathBuf};
#[derive(Default)]
pub struct EmbeddedOptions {
    pub port: u16,
    pub run_as: Option<String>,
    pub settings: Vec<(String, String)>,
}
pub struct EmbeddedPostgres {
    dir: PathBuf,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct EmbeddedError;
impl EmbeddedPostgres {
    pub fn start(dir: &Path, _o: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        Ok(Self { dir: dir.into() })
    }
    pub fn dsn(&self, _d: &str) -> String {
        String::new()
    }
    pub fn restarts(&self) -> u64 {
        0
    }
    pub fn shutdown(self) -> Result<(), EmbeddedError> {
        let _ = self.dir;
        Ok(())
    }
}
