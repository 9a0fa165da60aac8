// STUB (replaced by the real module)
#[derive(Debug, Clone, Copy)]
pub enum ContentEncoding { Identity, Gzip, Zstd }
impl ContentEncoding { pub fn from_header(_v: Option<&str>) -> Result<Self, BodyError> { Ok(Self::Identity) } }
#[derive(Debug, Clone, Copy)]
pub enum BodyFormat { JsonArray, Ndjson }
impl BodyFormat {
    pub fn from_content_type(_v: Option<&str>) -> Result<Option<Self>, BodyError> { Ok(None) }
    pub fn sniff(_b: &[u8]) -> Self { Self::Ndjson }
}
pub struct BodyCollector { v: Vec<u8> }
impl BodyCollector {
    pub fn new(_e: ContentEncoding, _l: usize) -> Self { BodyCollector { v: vec![] } }
    pub fn push(&mut self, c: &[u8]) -> Result<(), BodyError> { self.v.extend_from_slice(c); Ok(()) }
    pub fn finish(self) -> Result<Vec<u8>, BodyError> { Ok(self.v) }
}
#[derive(Debug, thiserror::Error)]
pub enum BodyError { #[error("too large")] TooLarge { limit: usize }, #[error("c")] Corrupt(String), #[error("e")] UnsupportedEncoding(String), #[error("t")] UnsupportedContentType(String) }
impl BodyError { pub fn reason(&self) -> &'static str { "x" } }
