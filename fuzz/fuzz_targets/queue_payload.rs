//! The batch payload decoder (what queue entries and peer batches hold): never
//! panics; a payload it reads is written back byte for byte; its rows, checked,
//! decode or fail without panicking; and split into bounded parts, the parts hold
//! the same rows in the same order.

#![no_main]

use bytes::Bytes;
use chute::batch::EncodedRows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((origin, rows)) = EncodedRows::from_payload(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert_eq!(rows.to_payload(&[], origin.as_deref()), data, "written back as read");
    if rows.validate().is_err() {
        return;
    }
    for i in 0..rows.len() {
        let _ = rows.decode(i);
    }
    let parts = rows.to_payloads(&[1, 2, 3, 4], origin.as_deref(), 256);
    let mut joined = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        assert_eq!(&part[..4], &[1, 2, 3, 4]);
        let (id, back) = EncodedRows::from_payload(Bytes::copy_from_slice(&part[4..])).expect("a part reads back");
        if parts.len() > 1 {
            assert_eq!(id, origin.as_ref().map(|o| format!("{o}#{n}")));
        }
        assert!(part.len() <= 256 || back.len() == 1, "a part over the limit holds one row");
        joined.push(back);
    }
    let refs: Vec<&EncodedRows> = joined.iter().collect();
    let all = EncodedRows::concat(&refs);
    assert_eq!(all.to_payload(&[], origin.as_deref()), data, "the parts hold every row, in order");
});
