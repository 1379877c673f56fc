// Sends one of every Segment call through @segment/analytics-node to a Sightline server,
// then prints the calls it made as JSON so the test can compare them with the log.
// usage: node send.mjs HOST WRITE_KEY RUN_ID
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, run] = process.argv.slice(2)
const errors = []
const analytics = new Analytics({ writeKey, host, flushAt: 3, maxRetries: 2 })
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))

const user = `node-user-${run}`
const anon = `node-anon-${run}`
const when = new Date('2026-01-02T03:04:05.678Z')
const calls = [
  ['track', { userId: user, event: 'Order Completed', properties: { orderId: 'o-1', total: 19.99, products: [{ sku: 'a', qty: 2 }] }, context: { campaign: { source: 'news' } }, timestamp: when }],
  ['identify', { userId: user, anonymousId: anon, traits: { email: 'Ann@Example.com', plan: 'pro', logins: 3 } }],
  ['page', { anonymousId: anon, category: 'Docs', name: 'Install', properties: { url: 'https://example.com/docs', path: '/docs' } }],
  ['screen', { userId: user, name: 'Home', properties: { variant: 'b' } }],
  ['group', { userId: user, groupId: `org-${run}`, traits: { name: 'Acme', employees: 50 } }],
  ['alias', { userId: user, previousId: anon }],
]
for (const [type, params] of calls) analytics[type](params)
await analytics.closeAndFlush({ timeout: 20000 })
if (errors.length) {
  console.error(errors.join('\n'))
  process.exit(1)
}
console.log(JSON.stringify(calls.map(([type, params]) => ({ type, ...params }))))
