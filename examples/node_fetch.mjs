// Node 20's built-in fetch ignores HTTPS_PROXY. Newer Node releases honour it when
// NODE_USE_ENV_PROXY=1 (which `firewall run` sets); on Node 20 use undici's
// EnvHttpProxyAgent (`npm install undici`), as below when it is installed.
let dispatcher;
try {
  const { EnvHttpProxyAgent } = await import("undici");
  dispatcher = new EnvHttpProxyAgent();
} catch {
  console.error("undici is not installed: relying on NODE_USE_ENV_PROXY (Node >= 24)");
}
const response = await fetch("https://api.openai.com/v1/models", {
  headers: { authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
  dispatcher,
});
console.log(response.status, (await response.text()).slice(0, 200));
