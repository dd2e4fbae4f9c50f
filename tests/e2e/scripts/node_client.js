// A Node agent: GET URL through the proxy in HTTPS_PROXY with Node's own modules only.
//
//   node node_client.js URL OUT.json
//
// Node 20 has no built-in proxy support for `https` or `fetch` (NODE_USE_ENV_PROXY is read by
// newer releases only), so this opens the tunnel itself: an `http` CONNECT to the proxy with the
// agent's credentials from HTTPS_PROXY, then `https.request` over that socket. The firewall's CA
// is trusted through NODE_EXTRA_CA_CERTS, which adds it to Node's built-in roots.
// It also tries the global `fetch` on the same URL and reports what happened.
"use strict";
const fs = require("fs");
const http = require("http");
const https = require("https");

const [url, out] = process.argv.slice(2);

function viaConnect(target) {
  const proxy = new URL(process.env.HTTPS_PROXY);
  const auth = Buffer.from(
    `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`
  ).toString("base64");
  return new Promise((resolve, reject) => {
    const connect = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: "CONNECT",
      path: `${target.hostname}:${target.port || 443}`,
      headers: { "proxy-authorization": `Basic ${auth}`, host: `${target.hostname}:${target.port || 443}` },
    });
    connect.on("error", reject);
    connect.on("connect", (answer, socket) => {
      if (answer.statusCode !== 200) {
        socket.destroy();
        resolve({ status: answer.statusCode, body: "", connect: answer.statusCode });
        return;
      }
      const request = https.request(
        { host: target.hostname, port: target.port || 443, path: target.pathname + target.search,
          method: "GET", socket, agent: false, servername: target.hostname },
        (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk) => (body += chunk));
          response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body }));
        }
      );
      request.on("error", reject);
      request.end();
    });
    connect.end();
  });
}

async function viaFetch(target) {
  try {
    const response = await fetch(target, { signal: AbortSignal.timeout(10000) });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { error: String(error.cause || error) };
  }
}

(async () => {
  const target = new URL(url);
  const report = { node: process.versions.node };
  report.https = await viaConnect(target).catch((error) => ({ error: String(error) }));
  report.fetch = await viaFetch(target);
  fs.writeFileSync(out, JSON.stringify(report));
})();
