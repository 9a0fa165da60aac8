//! RFC 5424 STRUCTURED-DATA as read, kept flat until it is written.
//!
//! The parser could build the `fields.sd` object (one JSON object per SD-ID, see
//! `crate::sources::syslog::rfc5424`) as a tree of maps, but the tree would live only to be
//! serialised once and freed: allocating, serialising and freeing it took about
//! a third of chute's CPU per syslog record. [`StructuredData`] instead holds the
//! SD-IDs, names and unescaped values back to back in one string, with their
//! places, and writes the object's JSON straight from them.

use std::cmp::Ordering;
use std::ops::Range;

use serde_json::Value;

use super::REPLACEMENT;

/// The STRUCTURED-DATA of one message: its elements' SD-IDs and parameters, in
/// the order they were read. Two values are equal when they hold the same
/// elements in the same order (how many NUL bytes were replaced on the way is
/// not part of the data).
#[derive(Debug, Clone, Default)]
pub struct StructuredData {
    /// SD-IDs, parameter names and unescaped values, back to back.
    text: String,
    /// One item per parameter, and one for each element without parameters.
    items: Vec<Item>,
    /// NUL bytes replaced with U+FFFD while reading.
    nul_replaced: usize,
}

impl PartialEq for StructuredData {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.items == other.items
    }
}

impl Eq for StructuredData {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    id: Range<u32>,
    /// Name and value; `None` for an element without parameters.
    param: Option<(Range<u32>, Range<u32>)>,
}

/// An element being read: the place of its SD-ID, and whether it has a parameter.
#[derive(Debug, Clone)]
pub(crate) struct ElementStart {
    id: Range<u32>,
    params: bool,
}

/// A parameter value being read.
pub(crate) struct ValueStart(u32);

impl StructuredData {
    /// Whether no element was read.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// NUL bytes replaced with U+FFFD while reading.
    pub fn nul_replaced(&self) -> usize {
        self.nul_replaced
    }

    fn at(&self) -> u32 {
        // A message is at most 64 MiB (`MAX_MESSAGE_BYTES_LIMIT`), which is at
        // most 192 MiB of text with every byte a NUL turned into U+FFFD.
        self.text.len() as u32
    }

    /// Appends text, replacing NUL bytes (PostgreSQL's jsonb cannot hold them).
    fn push_text(&mut self, s: &str) {
        if memchr::memchr(0, s.as_bytes()).is_some() {
            for c in s.chars() {
                if c == '\0' {
                    self.nul_replaced += 1;
                    self.text.push(REPLACEMENT);
                } else {
                    self.text.push(c);
                }
            }
        } else {
            self.text.push_str(s);
        }
    }

    fn push_range(&mut self, s: &str) -> Range<u32> {
        let start = self.at();
        self.push_text(s);
        start..self.at()
    }

    /// Starts an element with SD-ID `id`.
    pub(crate) fn start_element(&mut self, id: &str) -> ElementStart {
        ElementStart {
            id: self.push_range(id),
            params: false,
        }
    }

    /// Starts the value of a parameter called `name`; the value is then
    /// appended piece by piece with [`Self::push_value`].
    pub(crate) fn start_param(&mut self, name: &str) -> (Range<u32>, ValueStart) {
        let name = self.push_range(name);
        let value = ValueStart(self.at());
        (name, value)
    }

    /// Appends a piece of the value being read.
    pub(crate) fn push_value(&mut self, piece: &str) {
        self.push_text(piece);
    }

    /// Ends a parameter of `element`.
    pub(crate) fn end_param(
        &mut self,
        element: &mut ElementStart,
        name: Range<u32>,
        value: ValueStart,
    ) {
        element.params = true;
        let value = value.0..self.at();
        self.items.push(Item {
            id: element.id.clone(),
            param: Some((name, value)),
        });
    }

    /// Ends `element`.
    pub(crate) fn end_element(&mut self, element: ElementStart) {
        if !element.params {
            self.items.push(Item {
                id: element.id,
                param: None,
            });
        }
    }

    fn str(&self, r: &Range<u32>) -> &str {
        &self.text[r.start as usize..r.end as usize]
    }

    fn name(&self, item: &Item) -> Option<&str> {
        item.param.as_ref().map(|(name, _)| self.str(name))
    }

    /// Writes the `fields.sd` object as JSON to `out`: one object per SD-ID
    /// (elements with the same SD-ID merged), holding each parameter's value, or
    /// the array of its values in order when the name came more than once.
    /// `order` is scratch space, reused across calls.
    ///
    /// # Errors
    ///
    /// Only those of writing to `out`, which a `Vec` never has.
    pub fn write_json(&self, out: &mut Vec<u8>, order: &mut Vec<u32>) -> serde_json::Result<()> {
        order.clear();
        order.extend(0..self.items.len() as u32);
        // Stable: repeated values keep their order. Elements without parameters
        // (`None`) come first within their SD-ID.
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.items[a as usize], &self.items[b as usize]);
            match self.str(&a.id).cmp(self.str(&b.id)) {
                Ordering::Equal => self.name(a).cmp(&self.name(b)),
                other => other,
            }
        });
        let item = |k: usize| &self.items[order[k] as usize];
        out.push(b'{');
        let mut i = 0;
        while i < order.len() {
            let id = self.str(&item(i).id);
            let mut end = i;
            while end < order.len() && self.str(&item(end).id) == id {
                end += 1;
            }
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, id)?;
            out.extend_from_slice(b":{");
            let mut k = i;
            let mut first = true;
            while k < end {
                let Some((name, _)) = &item(k).param else {
                    k += 1;
                    continue;
                };
                let name = self.str(name);
                let mut same = k;
                while same < end && self.name(item(same)) == Some(name) {
                    same += 1;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut *out, name)?;
                out.push(b':');
                let values =
                    (k..same).filter_map(|v| item(v).param.as_ref().map(|(_, v)| self.str(v)));
                if same - k == 1 {
                    for v in values {
                        serde_json::to_writer(&mut *out, v)?;
                    }
                } else {
                    out.push(b'[');
                    for (n, v) in values.enumerate() {
                        if n > 0 {
                            out.push(b',');
                        }
                        serde_json::to_writer(&mut *out, v)?;
                    }
                    out.push(b']');
                }
                k = same;
            }
            out.push(b'}');
            i = end;
        }
        out.push(b'}');
        Ok(())
    }

    /// The `fields.sd` object as a JSON value (what [`Self::write_json`] writes).
    pub fn to_value(&self) -> Value {
        let mut json = Vec::new();
        match self.write_json(&mut json, &mut Vec::new()) {
            Ok(()) => serde_json::from_slice(&json).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The elements in the order read, each with its SD-ID and its parameters
    /// (name, value) in order.
    pub fn elements(&self) -> Vec<(&str, Vec<(&str, &str)>)> {
        let mut out: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
        let mut last: Option<&Range<u32>> = None;
        for item in &self.items {
            if last != Some(&item.id) {
                out.push((self.str(&item.id), Vec::new()));
                last = Some(&item.id);
            }
            if let (Some((name, value)), Some(element)) = (&item.param, out.last_mut()) {
                element.1.push((self.str(name), self.str(value)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(elements: &[(&str, &[(&str, &str)])]) -> StructuredData {
        let mut sd = StructuredData::default();
        for (id, params) in elements {
            let mut e = sd.start_element(id);
            for (name, value) in *params {
                let (name, v) = sd.start_param(name);
                sd.push_value(value);
                sd.end_param(&mut e, name, v);
            }
            sd.end_element(e);
        }
        sd
    }

    #[test]
    fn objects_per_sd_id_with_repeats_merged_into_arrays() {
        let sd = read(&[
            ("origin", &[("ip", "10.0.0.1"), ("ip", "10.0.0.2")]),
            (
                "exampleSDID@32473",
                &[("iut", "3"), ("eventSource", "App \"x\"")],
            ),
            ("empty", &[]),
            ("origin", &[("software", "s"), ("ip", "10.0.0.3")]),
        ]);
        assert_eq!(
            sd.to_value(),
            json!({
                "origin": {"ip": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "software": "s"},
                "exampleSDID@32473": {"iut": "3", "eventSource": "App \"x\""},
                "empty": {}
            })
        );
        // An element without parameters next to one with the same SD-ID.
        let sd = read(&[("a", &[]), ("a", &[("k", "v")])]);
        assert_eq!(sd.to_value(), json!({"a": {"k": "v"}}));
    }

    #[test]
    fn nul_is_replaced_and_counted() {
        let sd = read(&[("i\0d", &[("k", "a\0b\0")])]);
        assert_eq!(sd.nul_replaced(), 3);
        assert_eq!(
            sd.to_value(),
            json!({"i\u{FFFD}d": {"k": "a\u{FFFD}b\u{FFFD}"}})
        );
    }

    #[test]
    fn elements_come_back_in_the_order_read() {
        let sd = read(&[
            ("b", &[("k", "1"), ("k", "2")]),
            ("a", &[]),
            ("c", &[("x", "")]),
        ]);
        assert_eq!(
            sd.elements(),
            vec![
                ("b", vec![("k", "1"), ("k", "2")]),
                ("a", vec![]),
                ("c", vec![("x", "")])
            ]
        );
    }
}
