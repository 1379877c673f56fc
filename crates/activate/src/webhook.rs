//! One signed webhook request, and what its answer means for the delivery. IO.

pub use crate::answer::Answer;
use crate::answer::{self, Reply};
use crate::backoff;
use crate::signature::{self, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use crate::vendor::audiences::{self, AudienceCall};
use crate::vendor::{Method, Request, Vendor};
use reqwest::header;
use std::time::Duration;

/// How much of a vendor's answer is read: enough for its error object (whose code says
/// whether to retry), and a bound on what a misbehaving endpoint can make us hold.
const VENDOR_BODY_BYTES: usize = 64 * 1024;

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
        match self.execute(request, answer::SNIPPET_BYTES).await {
            Ok(reply) => answer::by_status(&reply),
            Err(retry) => retry,
        }
    }

    /// Sends a vendor's request (its credential in the URL or a header, never logged) and
    /// classifies the answer by the vendor's own error semantics.
    pub async fn send_vendor(&self, vendor: &Vendor, request: Request) -> Answer {
        self.call_vendor(vendor, request).await.0
    }

    /// Applies an audience change through a vendor's audience API: one request, or
    /// Google's job (created, given its operations, run). The first answer that is not
    /// an acceptance is the answer; a job left unrun by one is discarded by Google.
    pub async fn send_audience_call(&self, vendor: &Vendor, call: AudienceCall) -> Answer {
        let job = match call {
            AudienceCall::Single(request) => return self.send_vendor(vendor, request).await,
            AudienceCall::Job(job) => job,
        };
        let (answer, body) = self.call_vendor(vendor, job.create.clone()).await;
        if !matches!(answer, Answer::Accepted { .. }) {
            return answer;
        }
        let Some(name) = audiences::job_name(&body) else {
            return Answer::Refused {
                code: None,
                reason: "Google Ads created the job without naming it (no resourceName)".into(),
            };
        };
        let answer = self.send_vendor(vendor, job.operations(&name)).await;
        if !matches!(answer, Answer::Accepted { .. }) {
            return answer;
        }
        self.send_vendor(vendor, job.run(&name)).await
    }

    /// [`Webhook::send_vendor`], with the start of the answer's body.
    async fn call_vendor(&self, vendor: &Vendor, request: Request) -> (Answer, Vec<u8>) {
        let method = match request.method {
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .http
            .request(method, &request.url)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let request = match builder.body(request.body).build() {
            Ok(request) => request,
            Err(e) => {
                let reason = format!(
                    "the request cannot be built, so it was not sent: {}",
                    e.without_url()
                );
                return (Answer::Refused { code: None, reason }, Vec::new());
            }
        };
        match self.execute(request, VENDOR_BODY_BYTES).await {
            Ok(reply) => (vendor.classify(&reply), reply.body),
            Err(retry) => (retry, Vec::new()),
        }
    }

    /// Sends `request` and reads at most `keep` bytes of the answer's body; a request that
    /// got no answer is worth retrying.
    async fn execute(&self, request: reqwest::Request, keep: usize) -> Result<Reply, Answer> {
        let now_ms = sightline_core::time::now_ms();
        let mut response = self
            .http
            .execute(request)
            .await
            .map_err(|e| Answer::Retry {
                code: None,
                wait: None,
                // Without the URL: it may carry a credential.
                reason: e.without_url().to_string(),
            })?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| backoff::retry_after(v, now_ms));
        let mut body = Vec::new();
        while body.len() < keep {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(keep);
        Ok(Reply {
            status: response.status().as_u16(),
            retry_after,
            body,
        })
    }
}
