//! What every per-record decoder's output must hold, whatever the input: at
//! most `MAX_LISTED_REJECTIONS` rejections listed, all counted, in body order;
//! every accepted record of `tenant`, without NUL, encoding as COPY rows that
//! read back with the same text and fields. Included by the decoder targets.

use chute::batch::EncodedRows;
use chute::sources::verdict::{Parsed, MAX_LISTED_REJECTIONS};

pub fn check(parsed: &Parsed) {
    assert!(parsed.rejected.len() <= MAX_LISTED_REJECTIONS);
    assert!(parsed.rejected.len() <= parsed.rejected_count);
    assert!(parsed.rejected_count == 0 || !parsed.rejected.is_empty());
    assert!(parsed.rejected.windows(2).all(|w| w[0].index < w[1].index), "in body order");
    for r in &parsed.records {
        for text in [Some(&r.message), r.host.as_ref(), r.app.as_ref(), r.procid.as_ref(), r.msgid.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(!text.contains('\0'), "NUL in {text:?}");
        }
        assert_eq!(r.tenant, "tenant");
    }
    let rows = EncodedRows::encode(&parsed.records).expect("an accepted record encodes");
    assert_eq!(rows.len(), parsed.records.len());
    rows.validate().expect("well-formed rows");
    for (i, r) in parsed.records.iter().enumerate() {
        let back = rows.decode(i).expect("decodes");
        assert_eq!((&back.message, &back.host, &back.app), (&r.message, &r.host, &r.app));
        assert_eq!(back.fields, r.fields);
    }
}
