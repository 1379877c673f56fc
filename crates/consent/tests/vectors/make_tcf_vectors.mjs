// Builds TC strings with the IAB's reference library (@iabtechlabtcf/core) and
// writes tests/vectors/tcf.json: each string with the fields the reference
// decoder reads back from it. The Rust tests decode every string and compare
// field by field.
//
//   cd tests/vectors && npm ci && node make_tcf_vectors.mjs
import { writeFileSync } from 'node:fs';
import {
  GVL, TCModel, TCString, PurposeRestriction, RestrictionType,
} from '@iabtechlabtcf/core';

// A synthetic Global Vendor List: encoding drops vendors the GVL does not
// know, so every vendor id used below exists here.
function vendorList(maxVendorId) {
  const vendors = {};
  for (let id = 1; id <= maxVendorId; id++) {
    vendors[id] = {
      id, name: `Vendor ${id}`, purposes: [1, 2, 3, 4, 7], legIntPurposes: [2, 7, 8, 9, 10],
      flexiblePurposes: [2, 7], specialPurposes: [1], features: [], specialFeatures: [1],
      usesCookies: true, cookieMaxAgeSeconds: 86400, cookieRefresh: false, usesNonCookieAccess: false,
    };
  }
  const named = (n) => Object.fromEntries(
    Array.from({ length: n }, (_, i) => [i + 1, { id: i + 1, name: `#${i + 1}`, description: '' }]));
  return {
    gvlSpecificationVersion: 3, vendorListVersion: 150, tcfPolicyVersion: 5,
    lastUpdated: '2026-01-01T00:00:00Z', purposes: named(11), specialPurposes: named(3),
    features: named(3), specialFeatures: named(2), stacks: {}, dataCategories: {}, vendors,
  };
}

const ids = (vector) => { const out = []; vector.forEach((set, id) => { if (set) out.push(id); }); return out; };
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function build(spec) {
  const gvl = new GVL(vendorList(spec.gvlVendors ?? 1200), { language: spec.language ?? 'EN' });
  const model = new TCModel(gvl);
  model.cmpId = spec.cmpId;
  model.cmpVersion = spec.cmpVersion;
  model.consentScreen = spec.consentScreen ?? 1;
  model.publisherCountryCode = spec.publisherCC ?? 'DE';
  model.isServiceSpecific = spec.isServiceSpecific ?? false;
  model.useNonStandardTexts = spec.useNonStandardTexts ?? false;
  model.purposeOneTreatment = spec.purposeOneTreatment ?? false;
  model.supportOOB = spec.supportOOB ?? false;
  model.created = new Date(spec.created);
  model.lastUpdated = new Date(spec.lastUpdated ?? spec.created);
  model.purposeConsents.set(spec.purposes ?? []);
  model.purposeLegitimateInterests.set(spec.purposesLi ?? []);
  model.specialFeatureOptins.set(spec.specialFeatures ?? []);
  model.vendorConsents.set(spec.vendors ?? []);
  model.vendorLegitimateInterests.set(spec.vendorsLi ?? []);
  model.vendorsDisclosed.set(spec.disclosed ?? []);
  model.vendorsAllowed.set(spec.allowed ?? []);
  for (const [purposeId, type, vendorIds] of spec.restrictions ?? []) {
    const restriction = new PurposeRestriction(purposeId, type);
    for (const id of vendorIds) model.publisherRestrictions.add(id, restriction);
  }
  if (spec.customPurposes) {
    model.customPurposes = Object.fromEntries(range(1, spec.customPurposes).map((id) =>
      [id, { id, name: `Custom ${id}`, description: '' }]));
  }
  model.publisherConsents.set(spec.pubPurposes ?? []);
  model.publisherLegitimateInterests.set(spec.pubPurposesLi ?? []);
  model.publisherCustomConsents.set(spec.customConsents ?? []);
  model.publisherCustomLegitimateInterests.set(spec.customLi ?? []);
  return model;
}

// What the reference decoder reads back, in the crate's snake_case names.
function expected(tcString) {
  const m = TCString.decode(tcString);
  const restrictions = [];
  for (const purposeId of m.publisherRestrictions.getPurposes()) {
    for (const type of [0, 1, 2]) {
      const vendors = m.publisherRestrictions.getVendors(new PurposeRestriction(purposeId, type));
      if (vendors.length > 0) restrictions.push({ purpose_id: purposeId, restriction_type: type, vendors });
    }
  }
  return {
    version: m.version,
    created_deciseconds: Math.round(m.created.getTime() / 100),
    last_updated_deciseconds: Math.round(m.lastUpdated.getTime() / 100),
    cmp_id: m.cmpId,
    cmp_version: m.cmpVersion,
    consent_screen: m.consentScreen,
    consent_language: m.consentLanguage,
    vendor_list_version: m.vendorListVersion,
    policy_version: m.policyVersion,
    is_service_specific: m.isServiceSpecific,
    use_non_standard_texts: m.useNonStandardTexts,
    special_feature_opt_ins: ids(m.specialFeatureOptins),
    purposes_consent: ids(m.purposeConsents),
    purposes_li_transparency: ids(m.purposeLegitimateInterests),
    purpose_one_treatment: m.purposeOneTreatment,
    publisher_cc: m.publisherCountryCode,
    vendor_consents: ids(m.vendorConsents),
    vendor_legitimate_interests: ids(m.vendorLegitimateInterests),
    publisher_restrictions: restrictions,
    disclosed_vendors: ids(m.vendorsDisclosed),
    allowed_vendors: ids(m.vendorsAllowed),
    publisher_purposes_consent: ids(m.publisherConsents),
    publisher_purposes_li_transparency: ids(m.publisherLegitimateInterests),
    num_custom_purposes: m.numCustomPurposes,
    custom_purposes_consent: ids(m.publisherCustomConsents),
    custom_purposes_li_transparency: ids(m.publisherCustomLegitimateInterests),
  };
}

const cases = [
  {
    name: 'bitfield_vendors_en',
    note: 'few, scattered vendors: the bitfield encoding is smaller',
    spec: {
      cmpId: 10, cmpVersion: 3, created: '2026-03-01T12:00:00Z', lastUpdated: '2026-03-02T08:30:15.300Z',
      purposes: [1, 2, 3, 4, 7, 9, 10], purposesLi: [2, 7, 8, 9, 10], specialFeatures: [1],
      vendors: [2, 6, 8, 12, 31, 91], vendorsLi: [2, 6, 31], gvlVendors: 100,
    },
  },
  {
    name: 'range_vendors_fr',
    note: 'long runs of consecutive vendors up to a high id: the range encoding is smaller',
    spec: {
      cmpId: 300, cmpVersion: 21, consentScreen: 2, language: 'FR', publisherCC: 'FR',
      created: '2026-02-10T00:00:00Z', purposes: range(1, 11), purposesLi: [2, 7, 8, 9, 10, 11],
      specialFeatures: [1, 2], vendors: [...range(1, 400), ...range(600, 1100), 1150],
      vendorsLi: [...range(10, 900), 1200], gvlVendors: 1200,
    },
  },
  {
    name: 'publisher_restrictions_de',
    note: 'publisher restrictions of all three types, single vendors and ranges',
    spec: {
      cmpId: 7, cmpVersion: 1, language: 'DE', publisherCC: 'AT', created: '2026-04-05T16:20:00Z',
      purposes: [1, 2, 3], purposesLi: [2], vendors: [1, 5, 9, 20], vendorsLi: [5, 9],
      restrictions: [
        [2, RestrictionType.NOT_ALLOWED, [1, 2, 3, 4, 5, 30]],
        [7, RestrictionType.REQUIRE_CONSENT, [9, 10, 11, 12]],
        [2, RestrictionType.REQUIRE_LI, [50]],
      ],
      gvlVendors: 60,
    },
  },
  {
    name: 'disclosed_vendors_es',
    note: 'core segment plus a disclosed vendors segment (type 1)',
    spec: {
      cmpId: 99, cmpVersion: 4, language: 'ES', publisherCC: 'ES', created: '2026-05-20T09:00:00Z',
      purposes: [1, 2], vendors: [3, 4], disclosed: [1, 2, 3, 4, 5, 6, 7, 8, 40], gvlVendors: 50,
    },
  },
  {
    name: 'service_specific_publisher_tc_it',
    note: 'service-specific: disclosed vendors and publisher TC with custom purposes (type 3)',
    spec: {
      cmpId: 1234, cmpVersion: 56, language: 'IT', publisherCC: 'IT', created: '2026-06-30T23:59:59Z',
      isServiceSpecific: true, useNonStandardTexts: true, purposeOneTreatment: true,
      purposes: [2, 3, 4], purposesLi: [7, 10], vendors: [1, 2], vendorsLi: [1],
      disclosed: [1, 2, 3], pubPurposes: [1, 2, 3], pubPurposesLi: [2, 7],
      customPurposes: 5, customConsents: [1, 3], customLi: [2, 5], gvlVendors: 10,
    },
  },
  {
    name: 'everything_rejected_en',
    note: 'a reject-all string: no purposes, no vendors',
    spec: { cmpId: 28, cmpVersion: 2, created: '2026-01-15T10:00:00Z', publisherCC: 'GB', gvlVendors: 5 },
  },
];

const vectors = cases.map(({ name, note, spec, options }) => {
  const tc_string = TCString.encode(build(spec), options);
  return { name, note, tc_string, expected: expected(tc_string) };
});

// Out-of-band strings for vendors: core, disclosed, allowed vendors and publisher TC.
const oob = build({
  cmpId: 55, cmpVersion: 9, language: 'NL', publisherCC: 'NL', created: '2026-07-07T07:07:07Z',
  supportOOB: true, purposes: [1, 4], vendors: [7], disclosed: [7, 8], allowed: [7, 8, 9, 300],
  pubPurposes: [1], gvlVendors: 400,
});
const oobString = TCString.encode(oob, { isForVendors: true });
vectors.push({
  name: 'allowed_vendors_for_vendors_nl',
  note: 'isForVendors with out-of-band support: allowed vendors segment (type 2)',
  tc_string: oobString,
  expected: expected(oobString),
});

const out = {
  generator: 'tests/vectors/make_tcf_vectors.mjs',
  library: '@iabtechlabtcf/core@1.5.21',
  command: 'cd tests/vectors && npm ci && node make_tcf_vectors.mjs',
  vectors,
};
writeFileSync(new URL('./tcf.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${vectors.length} TCF vectors`);
