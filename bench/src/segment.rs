//! Realistic Segment events for the storage benchmarks: a mix of track (60%), page (30%) and
//! identify (10%) calls, shaped like analytics.js sends them from the browser (context with
//! library, page, user agent, locale, IP, campaign) or, for two thirds of the track and
//! identify calls, like a backend library (analytics-node; `sentAt` is the batch's, not the event's); e-commerce and content properties; each
//! with a unique messageId and ~550 bytes of JSON on average. Deterministic for a seed (SplitMix64), so two
//! runs send the same bytes.

use serde_json::{json, Value};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, chars: usize) -> String {
        let mut out = String::with_capacity(chars);
        while out.len() < chars {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(chars);
        out
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..]
        )
    }
}

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
const LOCALES: &[&str] = &["en-US", "en-GB", "de-DE", "fr-FR", "nl-NL", "es-ES"];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://news.example.org/article/spring-sale",
    "",
    "https://l.facebook.com/",
];
/// What differs from one website to another: the dictionary is trained on events from
/// [`TRAINING`], the benchmark sends events from [`SHOP`], so that the measured ratio does not
/// count on the dictionary knowing the site's own paths, titles and categories.
pub struct Site {
    host: &'static str,
    pages: &'static [(&'static str, &'static str)],
    categories: &'static [&'static str],
    campaign: &'static str,
}

pub const SHOP: Site = Site {
    host: "https://shop.example.com",
    pages: PAGES,
    categories: CATEGORIES,
    campaign: "spring_sale_2026",
};

pub const TRAINING: Site = Site {
    host: "https://www.gadgets.example.net",
    pages: &[
        ("/", "Gadgets - home"),
        ("/c/laptops", "Laptops"),
        ("/c/phones/android", "Android phones"),
        ("/p/usb-c-hub-7-in-1", "USB-C hub 7-in-1"),
        (
            "/p/noise-cancelling-headphones",
            "Noise cancelling headphones",
        ),
        ("/basket", "Basket"),
        ("/checkout/payment", "Payment"),
        ("/support/returns", "Returns"),
    ],
    categories: &["Laptops", "Phones", "Audio", "Cables", "Deals"],
    campaign: "black_friday",
};

const PAGES: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/collections/running", "Running shoes"),
    ("/collections/sale", "Sale"),
    ("/products/trail-runner-2", "Trail Runner 2"),
    ("/products/city-sneaker", "City Sneaker"),
    ("/cart", "Your cart"),
    ("/checkout/shipping", "Checkout - Shipping"),
    (
        "/blog/how-to-choose-running-shoes",
        "How to choose running shoes",
    ),
    ("/account/orders", "Your orders"),
];
const EVENTS: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Products Searched",
    "Newsletter Subscribed",
];
const CATEGORIES: &[&str] = &["Running", "Trail", "Lifestyle", "Accessories", "Sale"];
const SOURCES: &[&str] = &["google", "newsletter", "facebook", "bing", "partner"];
const MEDIUMS: &[&str] = &["cpc", "email", "social", "referral"];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Greta", "Hugo",
];
const LAST: &[&str] = &["Jansen", "Müller", "Smith", "Dubois", "García", "Rossi"];

/// One event of a stream. `users` bounds the distinct people (each event picks one).
pub fn event(rng: &mut Rng, site: &Site, seq: u64, users: u64) -> Value {
    let user = rng.below(users);
    let user_id = format!("usr_{:08x}", user.wrapping_mul(2_654_435_761) & 0xffff_ffff);
    let anonymous_id = {
        let mut per_user = Rng::new(user ^ 0x5eed);
        per_user.uuid()
    };
    let (path, title) = site.pages[rng.below(site.pages.len() as u64) as usize];
    let host = site.host;
    let second = 1_764_000_000 + seq / 20;
    let millis = rng.below(1000);
    let timestamp = format_time(second, millis);
    let kind = rng.below(10);
    // Page views come from the browser (analytics.js); of the rest, two thirds are sent by
    // a backend (analytics-node: no page, user agent or anonymous id).
    let browser = (6..9).contains(&kind) || rng.below(3) == 0;
    let mut context = if browser {
        json!({
            "ip": format!("{}.{}.{}.{}", 10 + rng.below(200), rng.below(256), rng.below(256), 1 + rng.below(254)),
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
            "locale": rng.pick(LOCALES),
            "page": {
                "path": path,
                "referrer": rng.pick(REFERRERS),
                "title": title,
                "url": format!("{host}{path}"),
            },
            "userAgent": rng.pick(AGENTS),
        })
    } else {
        json!({"library": {"name": "analytics-node", "version": "2.1.2"}})
    };
    if browser && rng.below(4) == 0 {
        context["campaign"] = json!({
            "name": site.campaign,
            "source": rng.pick(SOURCES),
            "medium": rng.pick(MEDIUMS),
        });
    }
    let message_id = if browser {
        format!("ajs-next-{}", rng.hex(32))
    } else {
        rng.uuid()
    };
    let mut event = if kind < 6 {
        let name = rng.pick(EVENTS);
        let sku = format!("SKU-{:05}", rng.below(40_000));
        let properties = match name {
            "Products Searched" => {
                json!({"query": rng.pick(&["trail shoes", "socks", "rain jacket", "size 42"])})
            }
            "Newsletter Subscribed" => json!({"list": "weekly", "placement": "footer"}),
            "Order Completed" => json!({
                "order_id": format!("ORD-{}", 100_000 + rng.below(900_000)),
                "total": (rng.below(40_000) as f64) / 100.0,
                "revenue": (rng.below(30_000) as f64) / 100.0,
                "shipping": 4.95,
                "currency": "EUR",
                "products": [{"product_id": sku, "quantity": 1 + rng.below(3)}],
            }),
            _ => json!({
                "product_id": sku,
                "name": title,
                "category": rng.pick(site.categories),
                "price": (1_000 + rng.below(15_000)) as f64 / 100.0,
                "quantity": 1 + rng.below(3),
                "currency": "EUR",
            }),
        };
        json!({"type": "track", "event": name, "properties": properties})
    } else if kind < 9 {
        json!({"type": "page", "name": title, "properties": {
            "path": path, "referrer": context["page"]["referrer"], "title": title,
            "url": format!("{host}{path}"),
        }})
    } else {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        json!({"type": "identify", "traits": {
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), user % 1000),
            "firstName": first, "lastName": last,
            "plan": rng.pick(&["free", "plus", "pro"]),
            "createdAt": format_time(1_700_000_000 + user * 97, 0),
        }})
    };
    let object = event.as_object_mut().expect("an object");
    if !browser || rng.below(3) > 0 {
        object.insert("userId".into(), json!(user_id));
    }
    if browser {
        object.insert("anonymousId".into(), json!(anonymous_id));
    }
    object.insert("messageId".into(), json!(message_id));
    object.insert("timestamp".into(), json!(timestamp));
    object.insert("context".into(), context);
    if browser {
        object.insert("integrations".into(), json!({}));
    }
    event
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix second (civil-from-days, no time crate needed).
fn format_time(second: u64, millis: u64) -> String {
    let days = (second / 86_400) as i64;
    let rest = second % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// An event as the log stores it before compression: with the server's `receivedAt`, and
/// the quoted messageId cut out (crates/store/src/log.rs).
fn as_stored(event: &mut Value) -> Vec<u8> {
    let id = event["messageId"].to_string();
    let timestamp = event["timestamp"].clone();
    event["receivedAt"] = timestamp;
    event.to_string().replacen(&id, "", 1).into_bytes()
}

/// Trains a zstd dictionary on `samples` TRAINING events, writes it to `out` and prints one
/// JSON line: the mean stored size of 5,000 SHOP events raw, with zstd alone, and with the
/// dictionary, at a few levels.
pub fn train_dictionary(out: &std::path::Path, samples: usize, size: usize) -> anyhow::Result<()> {
    let mut rng = Rng::new(0x7a1_u64.wrapping_mul(31));
    let training: Vec<Vec<u8>> = (0..samples as u64)
        .map(|i| as_stored(&mut event(&mut rng, &TRAINING, i, 5_000)))
        .collect();
    let dictionary = zstd::dict::from_samples(&training, size)?;
    std::fs::write(out, &dictionary)?;
    let mut rng = Rng::new(0x5e7_u64);
    let held_out: Vec<Vec<u8>> = (0..5_000u64)
        .map(|i| as_stored(&mut event(&mut rng, &SHOP, i, 1_000)))
        .collect();
    let mean = |f: &mut dyn FnMut(&[u8]) -> usize| {
        held_out.iter().map(|e| f(e)).sum::<usize>() as f64 / held_out.len() as f64
    };
    let mut report = serde_json::Map::new();
    report.insert("dictionary_bytes".into(), json!(dictionary.len()));
    report.insert("raw".into(), json!(mean(&mut |e| e.len()).round()));
    for level in [1, 3, 9, 19] {
        let mut plain = zstd::bulk::Compressor::new(level)?;
        let mut with = zstd::bulk::Compressor::with_dictionary(level, &dictionary)?;
        with.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))?;
        report.insert(
            format!("zstd_{level}"),
            json!(mean(&mut |e| plain.compress(e).map(|c| c.len()).unwrap_or(0)).round()),
        );
        report.insert(
            format!("zstd_{level}_dictionary"),
            json!(mean(&mut |e| with.compress(e).map(|c| c.len()).unwrap_or(0)).round()),
        );
    }
    println!("{}", Value::Object(report));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_about_550_bytes_and_unique() {
        let mut rng = Rng::new(1);
        let events: Vec<String> = (0..2000)
            .map(|i| event(&mut rng, &SHOP, i, 250).to_string())
            .collect();
        let mean = events.iter().map(String::len).sum::<usize>() / events.len();
        assert!((450..=650).contains(&mean), "mean {mean}");
        let ids: std::collections::HashSet<_> = events
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap()["messageId"].clone())
            .collect();
        assert_eq!(ids.len(), events.len());
        assert_eq!(format_time(1_764_000_000, 5), "2025-11-24T16:00:00.005Z");
    }
}
