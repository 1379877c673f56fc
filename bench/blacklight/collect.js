// Runs The Markup's Blacklight collector over the bench's fixture site, offline: every host
// name maps to the fixture server, as in `sightline scan`. Prints one JSON line: wall
// milliseconds of the collection, the pages it visited and the third-party hosts it saw.
//   node collect.js START_URL PAGES PORT OUT_DIR
const { collect } = require('@themarkup/blacklight-collector');

const [url, pages, port, outDir] = process.argv.slice(2);
(async () => {
  const started = Date.now();
  const result = await collect(url, {
    numPages: Number(pages),
    outDir,
    headless: true,
    quiet: true,
    puppeteerExecutablePath: process.env.SIGHTLINE_CHROMIUM || '/usr/bin/chromium',
    extraChromiumArgs: [`--host-resolver-rules=MAP * 127.0.0.1:${port}`, '--disable-gpu'],
  });
  const ms = Date.now() - started;
  console.log(JSON.stringify({
    status: result.status,
    ms,
    pages: (result.browsing_history || []).length,
    third_party_hosts: ((result.hosts || {}).requests || {}).third_party || [],
  }));
  // The collector leaves navigation timers behind; they would keep node up for 10 s more.
  process.exit(result.status === 'success' ? 0 : 1);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
