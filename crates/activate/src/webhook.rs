//! One signed webhook request, and what its answer means for the delivery. IO.

use crate::backoff;
use crate::signature::{self, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use reqwest::{header, StatusCode};
use std::time::Duration;

/// How much of a refusing receiver's body the dead letter keeps.
const SNIPPET_BYTES: usize = 512;

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
}

/// The HTTP(S) client of every webhook request; cheap to clone.
#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
}

impl Webhook {
    /// HTTPS receivers are verified against the system's roots and `extra_roots`, PEM
    /// certificates such as an internal CA's.
    pub fn new(timeout: Duration, extra_roots: Option<&[u8]>) -> reqwest::Result<Webhook> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect is the receiver's configuration error: surfaced, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sightline/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_roots {
            for root in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(Webhook {
            http: builder.build()?,
        })
    }

    /// POSTs `body` (JSON) signed with `secret`.
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        idempotency_key: &str,
        body: String,
    ) -> Answer {
        let now_ms = sightline_core::time::now_ms();
        let signature = signature::sign(secret, now_ms.div_euclid(1000), body.as_bytes());
        let request = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .body(body)
            .build();
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                return Answer::Refused {
                    code: None,
                    reason: format!(
                        "the request cannot be built, so it was not sent: {}",
                        e.without_url()
                    ),
                }
            }
        };
        let sent = self.http.execute(request).await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Answer::Retry {
                    code: None,
                    wait: None,
                    // Without the URL: it may carry a credential of the receiver's.
                    reason: e.without_url().to_string(),
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Accepted {
                code: status.as_u16(),
            };
        }
        let wait = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| backoff::retry_after(v, now_ms));
        let mut snippet = Vec::new();
        while snippet.len() < SNIPPET_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                _ => break,
            }
        }
        snippet.truncate(SNIPPET_BYTES);
        let reason = format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&snippet).trim()
        );
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if retryable {
            Answer::Retry {
                code: Some(status.as_u16()),
                wait,
                reason,
            }
        } else {
            Answer::Refused {
                code: Some(status.as_u16()),
                reason,
            }
        }
    }
}
