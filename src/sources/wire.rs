//! What the protobuf sources share: weighing a body off the wire before it is
//! decoded. A decoded message takes more room than its bytes (an empty one is
//! 2 bytes on the wire and a struct of up to ~200 in memory), so a body of
//! millions of empty messages must be refused before prost builds them.

use crate::sources::verdict::ParseError;

/// The messages of a protobuf schema, as far as weighing needs them.
pub trait Schema: Copy {
    /// The message a length-delimited field of this one holds, if any.
    fn child(self, field: u64) -> Option<Self>;
    /// What one decoded message of this kind takes, beside its bytes fields.
    fn size(self) -> usize;
}

/// Decoded messages may take at most this many times the body limit.
pub const DECODED_PER_BODY_BYTE: usize = 16;

/// Weighs `buf` as a message of `kind` against `limit`: [`ParseError::Undecodable`]
/// naming `what` when it is not protobuf, [`ParseError::TooLarge`] when it would
/// decode to more than [`DECODED_PER_BODY_BYTE`] times `limit`.
pub fn check_weight<S: Schema>(
    buf: &[u8],
    kind: S,
    limit: usize,
    what: &str,
) -> Result<(), ParseError> {
    let weight = weigh(buf, kind).ok_or_else(|| ParseError::Undecodable(format!("not {what}")))?;
    let most = limit.saturating_mul(DECODED_PER_BODY_BYTE);
    if weight > most {
        return Err(ParseError::TooLarge { limit: most });
    }
    Ok(())
}

/// prost's nesting limit: a body nested deeper is refused anyway.
const MAX_DEPTH: u32 = 100;

/// What decoding `buf` as a message of `kind` would take in memory, read off
/// the wire format: each message at its struct's size (counted twice for a
/// repeated field's room to grow), other length-delimited fields at their
/// length. `None` for what is not protobuf (groups included) or nests past
/// prost's limit.
pub fn weigh<S: Schema>(buf: &[u8], kind: S) -> Option<usize> {
    weigh_at(buf, kind, 0)
}

fn weigh_at<S: Schema>(mut buf: &[u8], kind: S, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut total = kind.size();
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).ok()?;
        match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut buf).ok()?;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
                let inner = buf.get(..len)?;
                buf = &buf[len..];
                total += match kind.child(key >> 3) {
                    Some(child) => child.size() + weigh_at(inner, child, depth + 1)?,
                    None => len,
                };
            }
            _ => return None,
        }
    }
    Some(total)
}
