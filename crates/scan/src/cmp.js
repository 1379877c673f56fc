// The consent banner recipes, run in the page by the scanner (`cmp.rs`): finds which CMP
// the page has and, when `act`, makes the choice `choice` ({kind: "accept_all",
// "reject_all" or "custom", and for custom the purpose groups granted: analytics,
// advertising, functional, social, and `ids`, the site's own ids granted in the CMPs that
// take those: didomi_purposes, didomi_vendors, usercentrics_services}) through the CMP's
// own JavaScript API where it has one, else (accept and reject) by clicking its known
// button, looked for in the document, in open shadow roots and in same-origin frames.
// Returns {cmp, method, made, detail}; {cmp: null} while no CMP is recognised (it may
// still be loading: the scanner asks again). Cross-origin frames are `frame.js`'s.
(choice, act) => {
  const kind = choice.kind;
  const get = (path) => {
    try {
      return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), window);
    } catch (e) {
      return undefined;
    }
  };
  const roots = () => {
    const out = [document];
    for (let i = 0; i < out.length && out.length < 200; i++) {
      for (const el of out[i].querySelectorAll("*")) {
        if (el.shadowRoot) out.push(el.shadowRoot);
        if (el.tagName === "IFRAME") {
          try {
            if (el.contentDocument) out.push(el.contentDocument);
          } catch (e) {
            // Cross-origin: frame.js's job.
          }
        }
      }
    }
    return out;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  // A button is a selector, or [selector, words its text must hold] where the selector
  // alone may also match another button.
  const find = (buttons) => {
    for (const root of roots()) {
      for (const button of buttons) {
        const [sel, words] = Array.isArray(button) ? button : [button, null];
        for (const el of root.querySelectorAll(sel)) {
          if (visible(el) && (!words || new RegExp(words, "i").test(el.textContent || ""))) return el;
        }
      }
    }
    return null;
  };
  const scripts = (parts) =>
    [...document.scripts].some((s) => parts.some((p) => (s.src || "").includes(p)));
  const ids = choice.ids || {};
  // Calls made one after another, each when the last one's promise (if any) settles.
  const inTurn = (calls) => calls.reduce((done, call) => done.then(call), Promise.resolve());
  const recipes = [
    {
      name: "onetrust",
      present: () => get("OneTrust") || get("Optanon") || scripts(["otSDKStub.js", "otBannerSdk.js", "cdn.cookielaw.org"]),
      accept_all: () => get("OneTrust.AllowAll") && (window.OneTrust.AllowAll(), true),
      reject_all: () => get("OneTrust.RejectAll") && (window.OneTrust.RejectAll(), true),
      // OneTrust's standard groups: C0002 performance, C0003 functional, C0004 targeting,
      // C0005 social media.
      custom: () => {
        if (!get("OneTrust.UpdateConsent")) return false;
        const groups = { C0002: choice.analytics, C0003: choice.functional, C0004: choice.advertising, C0005: choice.social };
        for (const [group, granted] of Object.entries(groups)) {
          window.OneTrust.UpdateConsent("Category", `${group}:${granted ? 1 : 0}`);
        }
        return true;
      },
      buttons: {
        accept_all: ["#onetrust-accept-btn-handler", "#accept-recommended-btn-handler"],
        reject_all: ["#onetrust-reject-all-handler", ".ot-pc-refuse-all-handler"],
      },
    },
    {
      name: "cookiebot",
      present: () => get("Cookiebot") || get("CookieConsent") || scripts(["consent.cookiebot.com"]),
      accept_all: () =>
        get("Cookiebot.submitCustomConsent") && (window.Cookiebot.submitCustomConsent(true, true, true), true),
      reject_all: () =>
        get("Cookiebot.submitCustomConsent") && (window.Cookiebot.submitCustomConsent(false, false, false), true),
      // Preferences, statistics, marketing.
      custom: () =>
        get("Cookiebot.submitCustomConsent") &&
        (window.Cookiebot.submitCustomConsent(choice.functional, choice.analytics, choice.advertising), true),
      buttons: {
        accept_all: ["#CybotCookiebotDialogBodyLevelButtonLevelOptinAllowAll"],
        reject_all: ["#CybotCookiebotDialogBodyButtonDecline"],
      },
    },
    {
      name: "didomi",
      present: () => get("Didomi") || scripts(["sdk.privacy-center.org"]),
      accept_all: () => get("Didomi.setUserAgreeToAll") && (window.Didomi.setUserAgreeToAll(), true),
      reject_all: () => get("Didomi.setUserDisagreeToAll") && (window.Didomi.setUserDisagreeToAll(), true),
      // Every purpose and vendor the notice knows, each enabled only if granted.
      custom: () => {
        const purposes = ids.didomi_purposes || [];
        const vendors = ids.didomi_vendors || [];
        if (!purposes.length || !get("Didomi.setCurrentUserStatus") || !get("Didomi.getPurposes")) return false;
        const status = { purposes: {}, vendors: {} };
        for (const p of window.Didomi.getPurposes() || []) {
          status.purposes[p.id] = { id: p.id, enabled: purposes.includes(p.id) };
        }
        for (const v of (get("Didomi.getVendors") && window.Didomi.getVendors()) || []) {
          const granted = vendors.length
            ? vendors.includes(v.id)
            : (v.purposeIds || []).every((p) => purposes.includes(p));
          status.vendors[v.id] = { id: v.id, enabled: granted };
        }
        return window.Didomi.setCurrentUserStatus(status) !== false;
      },
      custom_needs: (ids.didomi_purposes || []).length
        ? null
        : "its API takes the site's own purpose ids: name them in [consent.custom.NAME.cmp_ids] didomi_purposes",
      buttons: {
        accept_all: ["#didomi-notice-agree-button"],
        reject_all: ["#didomi-notice-disagree-button", ".didomi-continue-without-agreeing"],
      },
    },
    {
      name: "usercentrics",
      present: () => get("UC_UI") || get("__ucCmp") || document.getElementById("usercentrics-root") || scripts(["usercentrics.eu"]),
      accept_all: () =>
        (get("__ucCmp.acceptAllConsents") && (window.__ucCmp.acceptAllConsents(), true)) ||
        (get("UC_UI.acceptAllConsents") && (window.UC_UI.acceptAllConsents(), true)),
      reject_all: () =>
        (get("__ucCmp.denyAllConsents") && (window.__ucCmp.denyAllConsents(), true)) ||
        (get("UC_UI.denyAllConsents") && (window.UC_UI.denyAllConsents(), true)),
      // Everything denied, then the services granted accepted (and, in the v3 API, saved).
      custom: () => {
        const services = ids.usercentrics_services || [];
        if (!services.length) return false;
        const v3 = window.__ucCmp;
        if (get("__ucCmp.updateServicesConsents") && get("__ucCmp.denyAllConsents")) {
          inTurn([
            () => v3.denyAllConsents(),
            () => v3.updateServicesConsents(services.map((id) => ({ id, consent: true }))),
            () => get("__ucCmp.saveConsents") && v3.saveConsents(),
          ]);
          return true;
        }
        const v2 = window.UC_UI;
        if (get("UC_UI.acceptServices") && get("UC_UI.denyAllConsents")) {
          inTurn([() => v2.denyAllConsents(), () => v2.acceptServices(services)]);
          return true;
        }
        return false;
      },
      custom_needs: (ids.usercentrics_services || []).length
        ? null
        : "its API takes the site's own service ids: name them in [consent.custom.NAME.cmp_ids] usercentrics_services",
      buttons: {
        accept_all: ['[data-testid="uc-accept-all-button"]'],
        reject_all: ['[data-testid="uc-deny-all-button"]'],
      },
    },
    {
      name: "quantcast",
      present: () => document.getElementById("qc-cmp2-container") || scripts(["quantcast.mgr.consensu.org", "cmp.inmobi.com"]),
      buttons: {
        accept_all: [['.qc-cmp2-summary-buttons button[mode="primary"]', "accept|agree|allow|consent"]],
        // Its secondary button is "more options" on sites that show no reject.
        reject_all: [['.qc-cmp2-summary-buttons button[mode="secondary"]', "reject|disagree|decline|refuse"]],
      },
    },
    {
      name: "trustarc",
      // Its banner is in the page, or the preference manager's frame (frame.js clicks in it).
      present: () =>
        get("truste") ||
        document.getElementById("truste-consent-track") ||
        scripts(["consent.trustarc.com"]) ||
        document.querySelector('iframe[src*="consent-pref.trustarc.com"]'),
      buttons: {
        accept_all: ["#truste-consent-button"],
        reject_all: ["#truste-consent-required"],
      },
    },
    {
      name: "google",
      present: () => get("googlefc") || document.querySelector(".fc-consent-root") || scripts(["fundingchoicesmessages.google.com"]),
      buttons: {
        accept_all: [".fc-cta-consent"],
        reject_all: [".fc-cta-do-not-consent"],
      },
    },
    {
      // Its banner is a cross-origin frame: frame.js clicks in it.
      name: "sourcepoint",
      present: () => get("_sp_") || get("_sp_queue") || document.querySelector('iframe[id^="sp_message_iframe"]'),
      buttons: { accept_all: [".sp_choice_type_11"], reject_all: [".sp_choice_type_13"] },
    },
  ];
  for (const r of recipes) {
    let present = false;
    try {
      present = Boolean(r.present());
    } catch (e) {}
    if (!present) continue;
    if (!act) return { cmp: r.name, made: false };
    if (r[kind]) {
      try {
        if (r[kind]()) return { cmp: r.name, method: "api", made: true };
      } catch (e) {
        // Not ready, or changed: the buttons may still work.
      }
    }
    const button = find(r.buttons[kind] || []);
    if (button) {
      button.click();
      return { cmp: r.name, method: "selector", made: true };
    }
    const needs = r[`${kind}_needs`] ? `: ${r[`${kind}_needs`]}` : "";
    return {
      cmp: r.name,
      made: false,
      detail: `${r.name} is on the page but offers no ${kind.replace("_", "-")} choice this scanner can use (no API, no visible button)${needs}`,
    };
  }
  return { cmp: null, made: false };
}
