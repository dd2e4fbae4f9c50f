// Node 20's built-in clients that ignore HTTPS_PROXY: fetch and https.get, straight to URL.
// Writes {fetch, https} with each one's status or error to OUT.   node fetch_direct.js URL OUT
const fs = require("fs");
const https = require("https");
const [url, out] = process.argv.slice(2);
const result = { node: process.versions.node };

function viaHttps() {
  return new Promise((resolve) => {
    const request = https.get(url, { timeout: 3000 }, (response) => {
      response.resume();
      resolve({ status: response.statusCode });
    });
    request.on("error", (error) => resolve({ error: String(error) }));
    request.on("timeout", () => request.destroy(new Error("timeout")));
  });
}

(async () => {
  const started = Date.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    result.fetch = { status: response.status };
  } catch (error) {
    result.fetch = { error: String(error.cause || error) };
  }
  result.fetch.ms = Date.now() - started;
  const again = Date.now();
  result.https = await viaHttps();
  result.https.ms = Date.now() - again;
  fs.writeFileSync(out, JSON.stringify(result));
})();
