//! How much of a response body a probe keeps. Only what the checks need: a whole JSON body (up
//! to the 1 MiB cap) to read an answer or an `error` from it, else the first few KiB for the
//! detail. An event stream is parsed as it arrives, so its bytes are not kept at all beyond
//! that prefix; `success_contains` is looked for as the bytes go by. A probe's memory is thus
//! bounded by what it must read, not by what an upstream sends.

/// The body is read up to this many bytes; a 2xx body larger than this is `content_mismatch`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// What is kept of a body that is not read whole (an event stream, an HTML page).
pub const PREFIX_BYTES: usize = 4 * 1024;
/// What is kept of an error response (4xx, 5xx): enough for any JSON error object.
pub const ERROR_PREFIX_BYTES: usize = 16 * 1024;

/// What was read of a body.
#[derive(Clone, Default, PartialEq)]
pub struct Body {
    /// All of it when `whole`, else its first bytes.
    pub kept: Vec<u8>,
    /// `kept` is the entire body.
    pub whole: bool,
    /// More than [`MAX_BODY_BYTES`] was on offer (the rest was not read).
    pub over_cap: bool,
    /// Bytes read in all.
    pub len: usize,
    /// Whether `success_contains` appeared anywhere in the bytes read (if one was asked for).
    pub contains: Option<bool>,
}

impl Body {
    /// A body read whole (tests, and small replies).
    pub fn whole(bytes: impl Into<Vec<u8>>) -> Self {
        let kept = bytes.into();
        Body { len: kept.len(), kept, whole: true, over_cap: false, contains: None }
    }

    /// Nothing but whitespace (or nothing at all).
    pub fn is_blank(&self) -> bool {
        self.len == 0 || (self.whole && self.kept.iter().all(u8::is_ascii_whitespace))
    }

    /// Whether `needle` is in the body: as found while reading, else in what was kept.
    pub fn has(&self, needle: &str) -> bool {
        self.contains.unwrap_or_else(|| self.kept.windows(needle.len().max(1)).any(|w| w == needle.as_bytes()))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("kept_bytes", &self.kept.len())
            .field("whole", &self.whole)
            .field("over_cap", &self.over_cap)
            .field("len", &self.len)
            .field("contains", &self.contains)
            .finish()
    }
}

/// What a response is, for what must be kept of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 2xx `text/event-stream`: parsed as it arrives.
    Stream,
    /// Another 2xx: kept whole if it is JSON.
    Success,
    /// Anything else: only its beginning matters (the detail).
    Failure,
}

/// Whether to go on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    More,
    Enough,
}

/// Reads a body chunk by chunk, keeping what [`Kind`] needs.
pub struct BodyReader {
    kind: Kind,
    /// The reply must be an LLM answer: a 2xx that is not JSON cannot be one, and the rest of
    /// it need not be read.
    llm: bool,
    body: Body,
    limit: usize,
    needle: Option<Vec<u8>>,
    /// The last `needle.len() - 1` bytes, so a needle split between chunks is found.
    tail: Vec<u8>,
    decided: bool,
}

impl BodyReader {
    pub fn new(kind: Kind, llm: bool, success_contains: Option<&str>) -> Self {
        let limit = match kind {
            Kind::Stream => PREFIX_BYTES,
            Kind::Success => MAX_BODY_BYTES,
            Kind::Failure => ERROR_PREFIX_BYTES,
        };
        let needle = success_contains.filter(|n| !n.is_empty()).map(|n| n.as_bytes().to_vec());
        let contains = needle.as_ref().map(|_| false);
        BodyReader {
            kind,
            llm,
            body: Body { contains, ..Body::default() },
            limit,
            needle,
            tail: Vec::new(),
            decided: kind != Kind::Success,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Read {
        if chunk.is_empty() {
            return Read::More;
        }
        if !self.decided {
            // A JSON body is kept whole; anything else only for its first bytes.
            if let Some(first) = self.body.kept.iter().chain(chunk).find(|b| !b.is_ascii_whitespace()) {
                self.decided = true;
                if !matches!(first, b'{' | b'[') {
                    self.limit = PREFIX_BYTES;
                }
            }
        }
        let room = MAX_BODY_BYTES + 1 - self.body.len;
        let chunk = &chunk[..chunk.len().min(room)];
        self.body.len += chunk.len();
        self.find(chunk);
        let keep = self.limit.saturating_sub(self.body.kept.len()).min(chunk.len());
        self.body.kept.extend_from_slice(&chunk[..keep]);
        if self.body.len > MAX_BODY_BYTES {
            self.body.over_cap = true;
            self.body.len = MAX_BODY_BYTES;
            return Read::Enough;
        }
        let prefix_full = self.body.kept.len() >= self.limit;
        match self.kind {
            // An error's beginning says all there is to say.
            Kind::Failure if prefix_full => Read::Enough,
            // Not JSON, so no LLM reply: its beginning is the detail.
            Kind::Success if self.llm && self.decided && self.limit == PREFIX_BYTES && prefix_full => Read::Enough,
            _ => Read::More,
        }
    }

    fn find(&mut self, chunk: &[u8]) {
        let Some(needle) = self.needle.as_deref() else { return };
        if self.body.contains == Some(true) {
            return;
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        if window.windows(needle.len()).any(|w| w == needle) {
            self.body.contains = Some(true);
            return;
        }
        let keep = needle.len().saturating_sub(1).min(window.len());
        self.tail = window.split_off(window.len() - keep);
    }

    pub fn finish(mut self) -> Body {
        self.body.whole = !self.body.over_cap && self.body.kept.len() == self.body.len;
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: Kind, llm: bool, needle: Option<&str>, chunks: &[&[u8]]) -> (Body, usize) {
        let mut reader = BodyReader::new(kind, llm, needle);
        let mut fed = 0;
        for chunk in chunks {
            fed += 1;
            if reader.feed(chunk) == Read::Enough {
                break;
            }
        }
        (reader.finish(), fed)
    }

    #[test]
    fn what_is_kept() {
        let big_json = [b"{\"a\":\"".as_slice(), &[b'x'; 600 * 1024], b"\"}"];
        let (json, _) = read(Kind::Success, true, None, &big_json);
        assert!(json.whole && json.kept.len() == 600 * 1024 + 8);
        let page = vec![b'<'; 900 * 1024];
        let (html, _) = read(Kind::Success, false, None, &[&page]);
        assert_eq!((html.kept.len(), html.len, html.whole, html.over_cap), (PREFIX_BYTES, 900 * 1024, false, false));
        let over = vec![b'{'; MAX_BODY_BYTES + 10];
        let (over, _) = read(Kind::Success, false, None, &[&over]);
        assert!(over.over_cap && !over.whole);
        let error = vec![b'e'; 2 * 1024 * 1024];
        let (failure, _) = read(Kind::Failure, false, None, &[&error]);
        assert_eq!((failure.kept.len(), failure.whole), (ERROR_PREFIX_BYTES, false));
        assert!(Body::whole("  \n").is_blank() && !Body::whole("{}").is_blank());
    }

    /// A 900 KB stream keeps 4 KiB, whatever its chunks; the reader stops reading an LLM
    /// monitor's HTML page after its first bytes, and an error after its first 16 KiB.
    #[test]
    fn streams_and_pages_are_not_buffered() {
        let event = b"data: {\"choices\":[{\"delta\":{\"content\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}]}\n\n";
        let chunks: Vec<&[u8]> = std::iter::repeat_n(event.as_slice(), 900 * 1024 / event.len()).collect();
        let (stream, fed) = read(Kind::Stream, true, None, &chunks);
        assert_eq!(fed, chunks.len(), "a stream is read to its end");
        assert!(stream.kept.len() <= PREFIX_BYTES && stream.len > 800 * 1024);
        let page: Vec<&[u8]> = vec![&[b'<'; 1024]; 2048];
        let (_, fed) = read(Kind::Success, true, None, &page);
        assert_eq!(fed, PREFIX_BYTES / 1024, "an LLM monitor stops at the prefix of a page");
        let (_, fed) = read(Kind::Failure, false, None, &page);
        assert_eq!(fed, ERROR_PREFIX_BYTES / 1024);
    }

    #[test]
    fn success_contains_is_found_across_chunks_and_past_the_prefix() {
        let mut chunks: Vec<Vec<u8>> = vec![vec![b'x'; 10 * 1024]];
        chunks.push(b"...cho".to_vec());
        chunks.push(b"ices...".to_vec());
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (body, _) = read(Kind::Stream, false, Some("choices"), &refs);
        assert_eq!(body.contains, Some(true));
        assert!(body.has("choices"));
        let (body, _) = read(Kind::Success, false, Some("choices"), &[b"<html>cho", b"ice</html>"]);
        assert_eq!(body.contains, Some(false));
        assert!(!body.has("choices"));
    }
}
