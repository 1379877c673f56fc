//! What a receiver's answer means for a delivery: accepted, worth retrying, or refused.
//! Pure: a status, a `Retry-After` wait and the start of the body in, an [`Answer`] out.
//! Vendor types refine it with their own error semantics (`vendor`).

use std::time::Duration;

/// The receiver's answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx status.
    Accepted { code: u16 },
    /// 5xx, 408, 429, a timeout or a connection error: worth trying again, after `wait`
    /// when the receiver said so with `Retry-After`.
    Retry {
        code: Option<u16>,
        wait: Option<Duration>,
        reason: String,
    },
    /// Any other status: the receiver refuses this request; it becomes a dead letter. Also
    /// a request that cannot be built at all (`code` None: e.g. a messageId that is not a
    /// valid header value): sending it again would fail the same way.
    Refused { code: Option<u16>, reason: String },
    /// A 2xx status for the request, but the vendor refused some of its items (a vendor
    /// that answers per item, such as LinkedIn's batch create): `refused` holds each
    /// refused item's index in the request and the vendor's reason, and those become dead
    /// letters; the other items were taken.
    Partial {
        code: u16,
        refused: Vec<(usize, String)>,
    },
}

/// How much of a refusing receiver's body a dead letter's reason keeps.
pub const SNIPPET_BYTES: usize = 512;

/// An HTTP answer as received: the status, the wait its `Retry-After` asks for, and the
/// start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `HTTP <status>: <the start of the body>`, for a delivery's reason.
    pub fn reason(&self) -> String {
        let end = self.body.len().min(SNIPPET_BYTES);
        format!(
            "HTTP {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..end]).trim()
        )
    }
}

/// The generic HTTP semantics a webhook gets: 2xx accepted; 5xx, 408 and 429 retried
/// (after `Retry-After` when given); anything else refused.
pub fn by_status(reply: &Reply) -> Answer {
    let status = reply.status;
    if (200..300).contains(&status) {
        Answer::Accepted { code: status }
    } else if status >= 500 || status == 408 || status == 429 {
        Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason: reply.reason(),
        }
    } else {
        Answer::Refused {
            code: Some(status),
            reason: reply.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16) -> Reply {
        Reply {
            status,
            retry_after: Some(Duration::from_secs(3)),
            body: b" busy ".to_vec(),
        }
    }

    #[test]
    fn statuses_mean_what_http_says() {
        assert_eq!(by_status(&reply(204)), Answer::Accepted { code: 204 });
        for status in [500, 503, 408, 429] {
            assert_eq!(
                by_status(&reply(status)),
                Answer::Retry {
                    code: Some(status),
                    wait: Some(Duration::from_secs(3)),
                    reason: format!("HTTP {status}: busy"),
                }
            );
        }
        for status in [400, 401, 404, 301] {
            assert!(
                matches!(by_status(&reply(status)), Answer::Refused { code: Some(s), .. } if s == status)
            );
        }
    }

    #[test]
    fn a_reason_keeps_only_the_start_of_a_long_body() {
        let long = Reply {
            status: 400,
            retry_after: None,
            body: vec![b'x'; 10_000],
        };
        assert_eq!(long.reason().len(), "HTTP 400: ".len() + SNIPPET_BYTES);
    }
}
