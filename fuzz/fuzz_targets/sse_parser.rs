//! Arbitrary bytes, cut into arbitrary chunks, into the stream parser and the JSON reply
//! reader: neither may panic, and the reassembled text stays within its bound.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use llm_monitor::probe::sse::{parse_json, SseParser, MAX_TEXT_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut parser = SseParser::new();
    for (i, chunk) in body.chunks(step).enumerate() {
        parser.feed(chunk, Duration::from_millis(i as u64));
    }
    let answer = parser.finish(Duration::from_secs(1));
    assert!(answer.text.len() <= MAX_TEXT_BYTES);
    if let Some(answer) = parse_json(body) {
        assert!(answer.text.len() <= MAX_TEXT_BYTES);
    }
});
