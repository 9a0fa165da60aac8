//! Stream framing: never panics, frames stay within the limit, memory stays
//! within the limit plus one read, and however the stream is split into reads,
//! the frames, the error and the discarded byte count are the same.

#![no_main]

use chute::sources::syslog::framing::{Frame, Framer, FramingError};
use libfuzzer_sys::fuzz_target;

struct Outcome {
    frames: Vec<Frame>,
    error: Option<FramingError>,
    discarded: u64,
}

fn run(max: usize, stream: &[u8], reads: &mut dyn Iterator<Item = usize>) -> Outcome {
    let mut f = Framer::new(max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut rest = stream;
    while !rest.is_empty() {
        let n = reads.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (read, after) = rest.split_at(n);
        rest = after;
        if let Err(e) = f.push(read, &mut frames) {
            error = Some(e);
            break;
        }
        // A frame, a CR that may start a CRLF, or a length of up to 20 digits.
        let bound = (max + 1).max(20);
        assert!(f.buffered() <= bound, "holds {} bytes", f.buffered());
    }
    if error.is_none() {
        error = f.finish(&mut frames).err();
    }
    for frame in &frames {
        assert!(!frame.bytes.is_empty());
        assert!(frame.bytes.len() <= max);
    }
    Outcome {
        frames,
        error,
        discarded: f.take_discarded(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    // The limit: 1-32 bytes, to reach the cutting code with short inputs.
    let max = usize::from(config & 31) + 1;
    let whole = run(max, stream, &mut std::iter::empty());
    // Reads of 1-8 bytes, sizes taken from the stream itself.
    let mut sizes = stream.iter().map(|b| usize::from(b >> 5) + 1).cycle();
    let split = run(max, stream, &mut sizes);
    assert_eq!(whole.frames, split.frames);
    assert_eq!(whole.error, split.error);
    assert_eq!(whole.discarded, split.discarded);
    for frame in &whole.frames {
        let p = chute::sources::syslog::parse(&frame.bytes, &origin());
        assert!(p.record.severity.is_some());
    }
});

fn origin() -> chute::sources::syslog::Origin<'static> {
    static UTC: chute::sources::syslog::Timezone = chute::sources::syslog::Timezone::Utc;
    chute::sources::syslog::Origin {
        received_at: chrono::DateTime::UNIX_EPOCH,
        tenant: "t",
        format: chute::sources::syslog::Format::Auto,
        timezone: &UTC,
        max_message_bytes: 64 * 1024,
        peer_host: None,
    }
}
