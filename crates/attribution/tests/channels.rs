//! Channel grouping on real-looking hits.

use serde_json::json;
use sightline_attribution::{ChannelGrouper, ChannelInput, Error};

fn hit(url: &str, referrer: &str) -> ChannelInput {
    ChannelInput::from_url(url, (!referrer.is_empty()).then_some(referrer))
}

fn tagged(source: &str, medium: &str, campaign: &str) -> ChannelInput {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ChannelInput {
        url: Some("https://shop.example.com/".into()),
        utm_source: some(source),
        utm_medium: some(medium),
        utm_campaign: some(campaign),
        ..ChannelInput::default()
    }
}

#[test]
fn url_and_referrer_table() {
    let grouper = ChannelGrouper::default();
    let table = [
        // (page URL, referrer, expected channel)
        ("https://shop.example.com/", "", "Direct"),
        (
            "https://shop.example.com/p/1",
            "https://shop.example.com/",
            "Direct",
        ),
        (
            "https://shop.example.com/",
            "https://www.google.com/",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://www.google.co.uk/search?q=x",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://www.bing.com/search?q=shoes",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://duckduckgo.com/",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://search.brave.com/search?q=a",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://yandex.ru/",
            "Organic Search",
        ),
        (
            "https://shop.example.com/",
            "https://l.facebook.com/l.php?u=x",
            "Organic Social",
        ),
        (
            "https://shop.example.com/",
            "https://t.co/abc123",
            "Organic Social",
        ),
        (
            "https://shop.example.com/",
            "https://www.linkedin.com/feed/",
            "Organic Social",
        ),
        (
            "https://shop.example.com/",
            "https://old.reddit.com/r/shoes",
            "Organic Social",
        ),
        (
            "https://shop.example.com/",
            "https://www.youtube.com/watch?v=1",
            "Organic Video",
        ),
        (
            "https://shop.example.com/",
            "https://vimeo.com/12345",
            "Organic Video",
        ),
        (
            "https://shop.example.com/",
            "https://www.amazon.de/dp/B01",
            "Organic Shopping",
        ),
        (
            "https://shop.example.com/",
            "https://www.etsy.com/listing/1",
            "Organic Shopping",
        ),
        (
            "https://shop.example.com/",
            "https://news.example.org/article",
            "Referral",
        ),
        (
            "https://shop.example.com/",
            "https://notgoogle.com/",
            "Referral",
        ),
        (
            "https://shop.example.com/?gclid=abc",
            "https://www.google.com/",
            "Paid Search",
        ),
        ("https://shop.example.com/?gbraid=0AA", "", "Paid Search"),
        ("https://shop.example.com/?wbraid=Cj0", "", "Paid Search"),
        (
            "https://shop.example.com/?msclkid=9f",
            "https://www.bing.com/",
            "Paid Search",
        ),
        (
            "https://shop.example.com/?fbclid=IwAR",
            "https://l.facebook.com/",
            "Paid Social",
        ),
        ("https://shop.example.com/?ttclid=E.C", "", "Paid Social"),
        ("https://shop.example.com/?li_fat_id=1-2", "", "Paid Social"),
        (
            "https://shop.example.com/?utm_source=newsletter&utm_medium=email",
            "",
            "Email",
        ),
        (
            "https://shop.example.com/?gclid=x&utm_source=google&utm_medium=organic",
            "",
            "Organic Search",
        ),
    ];
    for (url, referrer, expected) in table {
        assert_eq!(
            grouper.channel(&hit(url, referrer)),
            expected,
            "url {url}, referrer {referrer}"
        );
    }
}

#[test]
fn utm_table() {
    let grouper = ChannelGrouper::default();
    let table = [
        // (utm_source, utm_medium, utm_campaign, expected channel)
        ("google", "cpc", "brand", "Paid Search"),
        ("bing", "ppc", "", "Paid Search"),
        ("google", "cpc", "pmax-cross-network", "Cross-network"),
        ("google", "cpc", "summer_shopping", "Paid Shopping"),
        ("partner", "paid", "eshop-launch", "Paid Shopping"),
        ("partner", "paid", "workshop-series", "Paid Other"),
        ("amazon", "cpc", "", "Paid Shopping"),
        ("facebook", "paid_social", "", "Paid Social"),
        ("instagram", "cpm", "", "Paid Social"),
        ("ig", "paid", "", "Paid Social"),
        ("youtube", "cpv", "", "Paid Video"),
        ("dv360", "display", "", "Display"),
        ("gdn", "banner", "", "Display"),
        ("criteo", "retargeting", "", "Paid Other"),
        ("taboola", "cpa", "", "Paid Other"),
        ("mystore", "shop", "", "Unassigned"),
        ("newsletter", "referral", "spring-shop", "Organic Shopping"),
        ("linkedin", "social", "", "Organic Social"),
        ("mastodon-post", "social-network", "", "Organic Social"),
        ("twitch", "", "", "Organic Video"),
        ("podcast-ad", "video", "", "Organic Video"),
        ("ecosia", "", "", "Organic Search"),
        ("whatever", "organic", "", "Organic Search"),
        ("email", "", "", "Email"),
        ("crm", "e-mail", "", "Email"),
        ("awin", "affiliate", "", "Affiliates"),
        ("blog", "referral", "", "Referral"),
        ("partner-app", "app", "", "Referral"),
        ("spotify", "audio", "", "Audio"),
        ("sms", "", "", "SMS"),
        ("twilio", "sms", "", "SMS"),
        ("braze", "push", "", "Mobile Push Notifications"),
        ("braze", "web-push", "", "Mobile Push Notifications"),
        ("onesignal", "mobile", "", "Mobile Push Notifications"),
        ("firebase", "", "", "Mobile Push Notifications"),
        ("flyer", "print", "", "Unassigned"),
        ("", "", "", "Direct"),
        ("(direct)", "(none)", "", "Direct"),
        ("Google", "CPC", "", "Paid Search"),
    ];
    for (source, medium, campaign, expected) in table {
        assert_eq!(
            grouper.channel(&tagged(source, medium, campaign)),
            expected,
            "source {source}, medium {medium}, campaign {campaign}"
        );
    }
}

#[test]
fn rules_file_runs_before_defaults_and_edits_lists() {
    let grouper = ChannelGrouper::from_toml(
        r#"
        [sources.search]
        add = ["kagi.example"]

        [sources.social]
        remove = ["reddit"]

        [[rules]]
        channel = "Partners"
        source = ["partner.example"]

        [[rules]]
        channel = "Brand Search"
        source_category = ["search"]
        medium = ["cpc"]
        campaign_contains = ["brand"]
        "#,
    )
    .unwrap();
    let referred = |referrer: &str| grouper.channel(&hit("https://shop.example.com/", referrer));
    assert_eq!(
        referred("https://kagi.example/search?q=x"),
        "Organic Search"
    );
    assert_eq!(referred("https://www.reddit.com/r/x"), "Referral");
    assert_eq!(referred("https://deals.partner.example/"), "Partners");
    assert_eq!(
        grouper.channel(&tagged("google", "cpc", "Brand-EU")),
        "Brand Search"
    );
    assert_eq!(
        grouper.channel(&tagged("google", "cpc", "generic")),
        "Paid Search"
    );
}

#[test]
fn bad_rules_files_say_what_to_fix() {
    for text in [
        "[[rules]]\nchannel = \"X\"\n",
        "[[rules]]\nchannel = \"\"\nmedium = [\"cpc\"]\n",
        "[[rules]]\nchannel = \"X\"\nmediums = [\"cpc\"]\n",
        "[sources.podcasts]\nadd = [\"x\"]\n",
        "not toml at all [",
    ] {
        let error = ChannelGrouper::from_toml(text).unwrap_err();
        assert!(matches!(error, Error::Rules(_)), "{text}: {error}");
        assert!(error.to_string().contains("docs/channels.md"), "{error}");
    }
}

#[test]
fn segment_events_give_url_referrer_and_campaign() {
    let page = json!({
        "type": "page",
        "properties": {"url": "https://shop.example.com/?utm_source=news&utm_medium=email&utm_campaign=june"},
        "context": {"page": {"referrer": "https://mail.example.net/"}}
    });
    let input = ChannelInput::from_segment_event(&page);
    assert_eq!(input.referrer.as_deref(), Some("https://mail.example.net/"));
    assert_eq!(input.utm_source.as_deref(), Some("news"));
    assert_eq!(input.utm_campaign.as_deref(), Some("june"));
    assert_eq!(ChannelGrouper::default().channel(&input), "Email");

    let track = json!({
        "type": "track",
        "event": "Signed Up",
        "context": {
            "page": {"url": "https://shop.example.com/signup", "referrer": ""},
            "campaign": {"name": "Launch", "source": "Facebook", "medium": "paid_social", "term": "t", "content": "c"}
        }
    });
    let input = ChannelInput::from_segment_event(&track);
    assert_eq!(input.utm_source.as_deref(), Some("Facebook"));
    assert_eq!(input.utm_term.as_deref(), Some("t"));
    assert_eq!(input.utm_content.as_deref(), Some("c"));
    assert_eq!(input.referrer, None);
    assert!(input.has_campaign_signals());
    assert_eq!(ChannelGrouper::default().channel(&input), "Paid Social");

    // Garbage shapes are ignored, not fatal.
    let odd = json!({"properties": {"url": 42}, "context": {"campaign": "x"}});
    assert_eq!(
        ChannelInput::from_segment_event(&odd),
        ChannelInput::default()
    );
}
