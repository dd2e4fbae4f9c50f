// Node's built-in clients GET URL and print the answer: `fetch` or `https.get`, with nothing set up
// for a proxy (the run's preload does that).   node node_clients.js fetch|https URL
"use strict";
const https = require("https");
const [client, url] = process.argv.slice(2);

function viaHttps() {
  return new Promise((resolve, reject) => {
    https
      .get(url, { timeout: 20000 }, (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve(`${response.statusCode} ${body}`));
      })
      .on("error", reject);
  });
}

async function viaFetch() {
  const response = await fetch(url, { signal: AbortSignal.timeout(20000) });
  return `${response.status} ${await response.text()}`;
}

(client === "fetch" ? viaFetch() : viaHttps()).then(
  (text) => console.log(text),
  (error) => {
    console.error(String(error.cause || error));
    process.exit(1);
  }
);
