//! CNAME look-ups for cloaking checks: first-party subdomains whose DNS CNAME points at a
//! tracking vendor. A minimal DNS client (one CNAME question over UDP to one configured
//! resolver) written here because that is all the scanner needs; a full resolver crate
//! would cost more build time than the feature.

#[cfg(feature = "browser")]
use std::net::SocketAddr;
#[cfg(feature = "browser")]
use std::time::Duration;

#[cfg(feature = "browser")]
use tokio::net::UdpSocket;

const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;
/// CNAME chains longer than this are treated as loops.
#[cfg(feature = "browser")]
const MAX_CHAIN: usize = 8;

/// Encodes a recursive query for the CNAME of `host`.
pub fn encode_query(id: u16, host: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + host.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    let name = host.trim_end_matches('.');
    // RFC 1035 2.3.4: a name is at most 255 octets on the wire (its labels, each with its
    // length byte, and the root's). Longer ones no resolver answers, and `read_name` takes
    // more than 128 labels for a loop (found by fuzzing: a query of 129 labels).
    if name.len() + 2 > 255 {
        return Err(format!("{host:?} is not a DNS name: over 255 octets"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || !label.is_ascii() {
            return Err(format!("{host:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_CNAME.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, String> {
    buf.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated DNS message".to_owned())
}

/// Reads a possibly compressed name at `at`; returns it and the offset after it in place.
fn read_name(buf: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *buf.get(at).ok_or("truncated DNS name")? as usize;
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xC0 == 0xC0 {
            let pointer = (u16_at(buf, at)? & 0x3FFF) as usize;
            end.get_or_insert(at + 2);
            at = pointer;
            continue;
        }
        let label = buf.get(at + 1..at + 1 + len).ok_or("truncated DNS label")?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    Err("DNS name compression loop".into())
}

/// The CNAME target in a response to query `id`, if the name has one.
pub fn parse_cname(buf: &[u8], id: u16) -> Result<Option<String>, String> {
    if u16_at(buf, 0)? != id {
        return Err("DNS answer for another query".into());
    }
    let rcode = u16_at(buf, 2)? & 0x000F;
    if rcode == 3 {
        return Ok(None); // NXDOMAIN
    }
    if rcode != 0 {
        return Err(format!("DNS error code {rcode}"));
    }
    let questions = u16_at(buf, 4)?;
    let answers = u16_at(buf, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(buf, at)?.1 + 4;
    }
    for _ in 0..answers {
        at = read_name(buf, at)?.1;
        let rtype = u16_at(buf, at)?;
        let rdlen = u16_at(buf, at + 8)? as usize;
        let rdata = at + 10;
        if rtype == TYPE_CNAME {
            return Ok(Some(read_name(buf, rdata)?.0));
        }
        at = rdata + rdlen;
    }
    Ok(None)
}

#[cfg(feature = "browser")]
async fn query(
    server: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u16)
        .unwrap_or(1);
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket
        .send_to(&encode_query(id, host)?, server)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(timeout, socket.recv_from(&mut buf))
        .await
        .map_err(|_| format!("no DNS answer from {server} within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    parse_cname(&buf[..n], id)
}

/// The CNAME chain of `host` (empty when it has none), following targets up to a bound.
#[cfg(feature = "browser")]
pub async fn cname_chain(
    server: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut chain: Vec<String> = Vec::new();
    let mut name = host.to_owned();
    while chain.len() < MAX_CHAIN {
        match query(server, &name, timeout).await? {
            Some(target) if !chain.contains(&target) && target != host => {
                chain.push(target.clone());
                name = target;
            }
            _ => break,
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with one CNAME answer, its owner name compressed.
    fn answer(query: &[u8], target: &str) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1; // one answer
        r.extend_from_slice(&[0xC0, 12]); // owner: pointer to the question name
        r.extend_from_slice(&TYPE_CNAME.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&300u32.to_be_bytes());
        let rdata = encode_query(0, target).unwrap()[12..].to_vec();
        let name = &rdata[..rdata.len() - 4];
        r.extend_from_slice(&(name.len() as u16).to_be_bytes());
        r.extend_from_slice(name);
        r
    }

    #[test]
    fn round_trip_cname() {
        let q = encode_query(7, "metrics.shop.test").unwrap();
        let r = answer(&q, "shop.sc.omtrdc.net");
        assert_eq!(
            parse_cname(&r, 7).unwrap().as_deref(),
            Some("shop.sc.omtrdc.net")
        );
        assert!(parse_cname(&r, 8).is_err());
    }

    #[test]
    fn nxdomain_and_empty_answers() {
        let mut q = encode_query(9, "www.shop.test").unwrap();
        assert_eq!(parse_cname(&q, 9).unwrap(), None);
        q[3] = 0x83;
        assert_eq!(parse_cname(&q, 9).unwrap(), None);
    }

    #[test]
    fn bad_names_and_messages_are_errors_not_panics() {
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &"x".repeat(64)).is_err());
        // 129 one-letter labels: 259 octets, over the limit (it read back as a loop).
        let long = vec!["a"; 129].join(".");
        assert!(encode_query(1, &long).unwrap_err().contains("255 octets"));
        // 127 labels, 255 octets: the longest name there is.
        let longest = vec!["a"; 126].join(".") + ".b";
        let q = encode_query(1, &longest).unwrap();
        assert_eq!(parse_cname(&q, 1).unwrap(), None);
        for bytes in [
            &[][..],
            &[0, 1],
            &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xC0, 12],
        ] {
            let _ = parse_cname(bytes, 1);
        }
        // A pointer to itself must not loop forever.
        let looped = [0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12];
        assert!(parse_cname(&looped, 1).is_err());
    }
}
