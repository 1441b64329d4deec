//! The fuzz body of the frame decoder and the message codec: a plain function run on
//! stable by tests over seeded random and mutated inputs, and by `net/fuzz` (cargo-fuzz,
//! target `frame_decode`) for long runs.
//!
//! It panics only when a property breaks: decoding never panics; every frame the decoder
//! returns re-encodes, if its body decodes, to the same bytes; and the decoded message
//! decodes again to the same value.

use crate::codec::body::{decode_request, decode_response, encode_request, encode_response};
use crate::codec::frame::{FrameDecoder, FRAME_HEADER_BYTES};

/// Feeds `data` to a [`FrameDecoder`] (the first byte picks the chunk size, so
/// partial headers and bodies are exercised) and decodes each frame as a request and as
/// a response, checking canonical round trips.
pub fn fuzz_frames(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    // Small limit so that the length check is reached often; still above any frame here.
    let mut decoder = FrameDecoder::new(1 << 20);
    let chunk_bytes = usize::from(selector % 32) + 1;
    let mut fed = 0usize;
    for chunk in stream.chunks(chunk_bytes) {
        decoder.feed(chunk);
        fed += chunk.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let mut whole = Vec::with_capacity(FRAME_HEADER_BYTES + frame.body.len());
                    if let Ok(request) = decode_request(&frame) {
                        encode_request(frame.header.request_id, &request, &mut whole);
                        check_same_frame(&frame, &whole);
                        let again = decode_request(&reframe(&whole));
                        assert_eq!(again.as_ref(), Ok(&request), "request round trip");
                    }
                    whole.clear();
                    if let Ok(response) = decode_response(&frame) {
                        encode_response(frame.header.request_id, &response, &mut whole);
                        check_same_frame(&frame, &whole);
                        let again = decode_response(&reframe(&whole));
                        assert_eq!(again.as_ref(), Ok(&response), "response round trip");
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // Sticky: the same error again, whatever follows.
                    decoder.feed(&[0u8; FRAME_HEADER_BYTES]);
                    assert_eq!(decoder.next_frame(), Err(error), "frame errors are sticky");
                    return;
                }
            }
        }
        assert!(
            decoder.buffered_bytes() <= fed,
            "the decoder invents no bytes"
        );
    }
}

/// The frame in `whole`, through a fresh decoder; panics if it is not one whole frame.
fn reframe(whole: &[u8]) -> crate::codec::frame::Frame {
    let mut decoder = FrameDecoder::new(crate::codec::frame::FRAME_BODY_BYTES_MAX);
    decoder.feed(whole);
    match decoder.next_frame() {
        Ok(Some(frame)) if decoder.buffered_bytes() == 0 => frame,
        other => panic!("re-encoded frame does not decode alone: {other:?}"),
    }
}

fn check_same_frame(frame: &crate::codec::frame::Frame, whole: &[u8]) {
    let again = reframe(whole);
    assert_eq!(again.header, frame.header, "re-encoded header differs");
    assert_eq!(again.body, frame.body, "re-encoded body differs");
}
