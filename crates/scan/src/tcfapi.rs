//! Consent given by a configured TC string: the scanner's own `__tcfapi` (IAB TCF v2.2 CMP
//! API: `ping`, `getTCData`, `addEventListener`, `removeEventListener`), installed in every
//! frame before page scripts run, so vendor scripts that ask the CMP see that consent.
//! Pure: the TC string in, the script's text out.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sightline_consent::TcString;

/// `{"1": true, "3": true}` for ids 1 and 3, the shape of the CMP API's boolean maps.
fn id_map<T: ToString>(ids: &[T]) -> Value {
    let map: BTreeMap<String, bool> = ids.iter().map(|id| (id.to_string(), true)).collect();
    json!(map)
}

/// The `TCData` object the CMP API hands to callbacks, for a decoded TC string.
pub fn tc_data(text: &str, tc: &TcString) -> Value {
    let publisher = tc.publisher_tc.clone().unwrap_or_default();
    json!({
        "tcString": text,
        "tcfPolicyVersion": tc.policy_version,
        "cmpId": tc.cmp_id,
        "cmpVersion": tc.cmp_version,
        "gdprApplies": true,
        "eventStatus": "tcloaded",
        "cmpStatus": "loaded",
        "isServiceSpecific": tc.is_service_specific,
        "useNonStandardTexts": tc.use_non_standard_texts,
        "publisherCC": tc.publisher_cc,
        "purposeOneTreatment": tc.purpose_one_treatment,
        "outOfBand": {
            "allowedVendors": id_map(tc.allowed_vendors.as_deref().unwrap_or_default()),
            "disclosedVendors": id_map(tc.disclosed_vendors.as_deref().unwrap_or_default()),
        },
        "purpose": {
            "consents": id_map(&tc.purposes_consent),
            "legitimateInterests": id_map(&tc.purposes_li_transparency),
        },
        "vendor": {
            "consents": id_map(&tc.vendor_consents),
            "legitimateInterests": id_map(&tc.vendor_legitimate_interests),
        },
        "specialFeatureOptins": id_map(&tc.special_feature_opt_ins),
        "publisher": {
            "consents": id_map(&publisher.purposes_consent),
            "legitimateInterests": id_map(&publisher.purposes_li_transparency),
            "customPurpose": {
                "consents": id_map(&publisher.custom_purposes_consent),
                "legitimateInterests": id_map(&publisher.custom_purposes_li_transparency),
            },
            "restrictions": {},
        },
    })
}

/// The script installed with `Page.addScriptToEvaluateOnNewDocument`. The site's own CMP
/// stub cannot replace it (assignments to `window.__tcfapi` are ignored): the configured
/// choice is what the scan is about.
pub fn tcfapi_script(text: &str) -> Result<String, String> {
    let text = text.trim();
    let tc = TcString::decode(text).map_err(|e| format!("not a TCF v2 TC string: {e}"))?;
    let data = tc_data(text, &tc);
    let ping = json!({
        "gdprApplies": true,
        "cmpLoaded": true,
        "cmpStatus": "loaded",
        "displayStatus": "hidden",
        "apiVersion": "2.2",
        "cmpVersion": tc.cmp_version,
        "cmpId": tc.cmp_id,
        "gvlVersion": tc.vendor_list_version,
        "tcfPolicyVersion": tc.policy_version,
    });
    Ok(format!(
        r#"(() => {{
  const data = {data};
  const ping = {ping};
  let nextListener = 0;
  const api = function (command, version, callback, parameter) {{
    if (typeof callback !== 'function') return;
    const copy = () => JSON.parse(JSON.stringify(data));
    switch (command) {{
      case 'ping': callback(Object.assign({{}}, ping), true); break;
      case 'getTCData': callback(copy(), true); break;
      case 'addEventListener': {{
        const d = copy(); d.listenerId = ++nextListener; callback(d, true); break;
      }}
      case 'removeEventListener': callback(true); break;
      default: callback(null, false);
    }}
  }};
  Object.defineProperty(window, '__tcfapi', {{ get: () => api, set: () => {{}}, configurable: false }});
}})();"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc_string(purposes: &[u8], vendors: &[u16]) -> String {
        TcString {
            cmp_id: 300,
            cmp_version: 2,
            consent_language: "EN".into(),
            vendor_list_version: 150,
            policy_version: 5,
            publisher_cc: "DE".into(),
            purposes_consent: purposes.to_vec(),
            vendor_consents: vendors.to_vec(),
            ..Default::default()
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn tc_data_has_the_cmp_api_shape() {
        let text = tc_string(&[1, 7, 8], &[755]);
        let tc = TcString::decode(&text).unwrap();
        let d = tc_data(&text, &tc);
        assert_eq!(d["tcString"], text.as_str());
        assert_eq!(d["cmpId"], 300);
        assert_eq!(d["tcfPolicyVersion"], 5);
        assert_eq!(d["gdprApplies"], true);
        assert_eq!(d["eventStatus"], "tcloaded");
        assert_eq!(
            d["purpose"]["consents"],
            json!({"1": true, "7": true, "8": true})
        );
        assert_eq!(d["purpose"]["consents"].get("3"), None);
        assert_eq!(d["vendor"]["consents"], json!({"755": true}));
        assert_eq!(d["publisherCC"], "DE");
    }

    #[test]
    fn the_script_embeds_the_data_and_answers_the_commands() {
        let text = tc_string(&[1, 3, 4], &[]);
        let script = tcfapi_script(&format!("  {text} ")).unwrap();
        assert!(
            script.contains(&format!("\"tcString\":\"{text}\"")),
            "{script}"
        );
        for command in [
            "'ping'",
            "'getTCData'",
            "'addEventListener'",
            "'removeEventListener'",
        ] {
            assert!(script.contains(command), "{command}");
        }
        assert!(script.contains("\"apiVersion\":\"2.2\""));
    }

    #[test]
    fn a_bad_string_is_an_error() {
        assert!(tcfapi_script("not a tc string").is_err());
        assert!(tcfapi_script("").is_err());
    }
}
