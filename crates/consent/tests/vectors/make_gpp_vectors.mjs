// Builds GPP strings with the IAB's reference library (@iabgpp/cmpapi) and
// writes tests/vectors/gpp.json: each string with the section ids and the
// fields the reference decoder reads back from it.
//
//   cd tests/vectors && npm ci && node make_gpp_vectors.mjs
import { writeFileSync } from 'node:fs';
import { GppModel } from '@iabgpp/cmpapi';

function build(fields) {
  const model = new GppModel();
  for (const [section, name, value] of fields) model.setFieldValue(section, name, value);
  return model.encode();
}

// What the reference decoder reads back, in the crate's snake_case names.
function expected(gppString) {
  const m = new GppModel(gppString);
  const out = { section_ids: m.getHeader().SectionIds };
  if (m.hasSection('uspv1')) {
    const s = m.getSection('uspv1');
    out.uspv1 = { version: s.Version, notice: s.Notice, opt_out_sale: s.OptOutSale, lspa_covered: s.LspaCovered };
  }
  if (m.hasSection('usnat')) {
    const s = m.getSection('usnat');
    out.usnat = {
      version: s.Version,
      sharing_notice: s.SharingNotice,
      sale_opt_out_notice: s.SaleOptOutNotice,
      sharing_opt_out_notice: s.SharingOptOutNotice,
      targeted_advertising_opt_out_notice: s.TargetedAdvertisingOptOutNotice,
      sensitive_data_processing_opt_out_notice: s.SensitiveDataProcessingOptOutNotice,
      sensitive_data_limit_use_notice: s.SensitiveDataLimitUseNotice,
      sale_opt_out: s.SaleOptOut,
      sharing_opt_out: s.SharingOptOut,
      targeted_advertising_opt_out: s.TargetedAdvertisingOptOut,
      sensitive_data_processing: s.SensitiveDataProcessing,
      known_child_sensitive_data_consents: s.KnownChildSensitiveDataConsents,
      personal_data_consents: s.PersonalDataConsents,
      mspa_covered_transaction: s.MspaCoveredTransaction,
      mspa_opt_out_option_mode: s.MspaOptOutOptionMode,
      mspa_service_provider_mode: s.MspaServiceProviderMode,
      gpc: m.getFieldValue('usnat', 'GpcSegmentIncluded') ? m.getFieldValue('usnat', 'Gpc') : null,
    };
  }
  if (m.hasSection('tcfeuv2')) {
    const s = m.getSection('tcfeuv2');
    out.tcfeuv2 = {
      cmp_id: s.CmpId, cmp_version: s.CmpVersion, consent_language: s.ConsentLanguage,
      vendor_list_version: s.VendorListVersion, policy_version: s.PolicyVersion,
      publisher_cc: s.PublisherCountryCode,
      purposes_consent: s.PurposeConsents.flatMap((on, i) => (on ? [i + 1] : [])),
      vendor_consents: s.VendorConsents,
      vendor_legitimate_interests: s.VendorLegitimateInterests,
    };
  }
  return out;
}

const created = new Date('2026-03-01T12:00:00Z');
const tcf = [
  ['tcfeuv2', 'Created', created], ['tcfeuv2', 'LastUpdated', created],
  ['tcfeuv2', 'CmpId', 31], ['tcfeuv2', 'CmpVersion', 2], ['tcfeuv2', 'ConsentLanguage', 'EN'],
  ['tcfeuv2', 'VendorListVersion', 150], ['tcfeuv2', 'PolicyVersion', 5],
  ['tcfeuv2', 'PublisherCountryCode', 'DE'],
  ['tcfeuv2', 'PurposeConsents', [true, true, false, true, false, false, true, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false]],
  ['tcfeuv2', 'VendorConsents', [2, 6, 8, 755]],
  ['tcfeuv2', 'VendorLegitimateInterests', [2, 6]],
];
const uspv1 = (notice, optOut, lspa) => [
  ['uspv1', 'Notice', notice], ['uspv1', 'OptOutSale', optOut], ['uspv1', 'LspaCovered', lspa],
];
const usnat = (saleOptOut, gpc) => [
  ['usnat', 'SharingNotice', 1], ['usnat', 'SaleOptOutNotice', 1], ['usnat', 'SharingOptOutNotice', 1],
  ['usnat', 'TargetedAdvertisingOptOutNotice', 1], ['usnat', 'SensitiveDataProcessingOptOutNotice', 2],
  ['usnat', 'SensitiveDataLimitUseNotice', 0], ['usnat', 'SaleOptOut', saleOptOut],
  ['usnat', 'SharingOptOut', saleOptOut], ['usnat', 'TargetedAdvertisingOptOut', 2],
  ['usnat', 'SensitiveDataProcessing', [0, 1, 2, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0]],
  ['usnat', 'KnownChildSensitiveDataConsents', [0, 2, 1]],
  ['usnat', 'PersonalDataConsents', 0], ['usnat', 'MspaCoveredTransaction', 2],
  ['usnat', 'MspaOptOutOptionMode', 1], ['usnat', 'MspaServiceProviderMode', 2],
  ['usnat', 'GpcSegmentIncluded', gpc !== null], ['usnat', 'Gpc', gpc ?? false],
];

const cases = [
  { name: 'tcfeuv2_only', fields: tcf },
  { name: 'uspv1_only', fields: uspv1('Y', 'N', 'N') },
  { name: 'uspv1_opted_out', fields: uspv1('Y', 'Y', 'Y') },
  { name: 'usnat_with_gpc', fields: usnat(1, true) },
  { name: 'usnat_without_gpc_segment', fields: usnat(2, null) },
  { name: 'tcfeuv2_uspv1_usnat', fields: [...tcf, ...uspv1('Y', 'N', 'N'), ...usnat(1, false)] },
];

const vectors = cases.map(({ name, fields }) => {
  const gpp_string = build(fields);
  return { name, gpp_string, expected: expected(gpp_string) };
});

const out = {
  generator: 'tests/vectors/make_gpp_vectors.mjs',
  library: '@iabgpp/cmpapi@3.2.0',
  command: 'cd tests/vectors && npm ci && node make_gpp_vectors.mjs',
  vectors,
};
writeFileSync(new URL('./gpp.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${vectors.length} GPP vectors`);
