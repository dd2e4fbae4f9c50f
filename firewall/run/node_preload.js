// Loaded into every Node process of a `firewall run` (NODE_OPTIONS=--require this file).
//
// Node 20's built-in `fetch` and `https.get` ignore HTTPS_PROXY; newer releases (22.21+, 24.5+)
// honour it with NODE_USE_ENV_PROXY, which `firewall run` sets. Where Node does not, this preload
// gives both the proxy of the environment, the way undici's ProxyAgent does it: a CONNECT tunnel
// to the target through the proxy (with the credentials in the proxy URL), then TLS over it,
// trusting Node's roots plus NODE_EXTRA_CA_CERTS. `fetch` gets it through Node's own undici Agent
// (its class is the one of the global dispatcher, so it matches the Node release), `http`/`https`
// through their global agents. The proxy's own address and NO_PROXY hosts are connected to
// directly. Where Node already proxies a client itself (its global dispatcher is Node's
// EnvHttpProxyAgent; its global agent has `proxyEnv`), that client is left as Node made it.
//
// It changes nothing when no proxy variable is set, and never throws: a failure leaves the
// clients as Node made them (under isolation they then get a plain connection error).
"use strict";

(() => {
  const proxyText =
    process.env.HTTPS_PROXY || process.env.https_proxy || process.env.ALL_PROXY || process.env.all_proxy;
  if (!proxyText) return;
  let proxy;
  try {
    proxy = new URL(proxyText);
  } catch {
    return;
  }
  if (proxy.protocol !== "http:") return;

  const net = require("net");
  const tls = require("tls");
  const http = require("http");
  const https = require("https");

  const proxyPort = Number(proxy.port || 80);
  const proxyHost = proxy.hostname.replace(/^\[|\]$/g, "");
  const authorization = proxy.username
    ? "Basic " +
      Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")
    : null;
  const noProxy = (process.env.NO_PROXY || process.env.no_proxy || "")
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry) => entry.toLowerCase());

  function direct(host, port) {
    host = String(host).toLowerCase().replace(/^\[|\]$/g, "");
    if (host === proxyHost.toLowerCase() && Number(port) === proxyPort) return true;
    return noProxy.some((entry) => {
      if (entry === "*") return true;
      const [name, onlyPort] = entry.split(/:(?=\d+$)/);
      if (onlyPort && Number(onlyPort) !== Number(port)) return false;
      const bare = name.replace(/^\*?\./, "");
      return host === bare || host.endsWith("." + bare);
    });
  }

  // A socket to host:port through the proxy's CONNECT; `done(error, socket)`.
  function tunnel(host, port, done) {
    done = once(done);
    const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const headers = { host: target };
    if (authorization) headers["proxy-authorization"] = authorization;
    const request = http.request({
      host: proxyHost,
      port: proxyPort,
      method: "CONNECT",
      path: target,
      headers,
      agent: false,
      setHost: false,
    });
    request.once("connect", (answer, socket, head) => {
      if (answer.statusCode !== 200) {
        socket.destroy();
        const error = new Error(`the proxy refused CONNECT ${target}: ${answer.statusCode} ${answer.statusMessage}`);
        error.code = "ERR_PROXY_CONNECT";
        error.statusCode = answer.statusCode;
        done(error);
        return;
      }
      if (head && head.length) socket.unshift(head);
      done(null, socket);
    });
    request.once("error", (error) => done(error));
    request.end();
  }

  function once(done) {
    let called = false;
    return (...args) => {
      if (!called) {
        called = true;
        done(...args);
      }
    };
  }

  function serverName(host, given) {
    return given || (net.isIP(host) ? undefined : host);
  }

  function secure(socket, options, done) {
    done = once(done);
    const secured = tls.connect({ ...options, socket });
    secured.once("secureConnect", () => done(null, secured));
    secured.once("error", (error) => done(error));
  }

  // http(s).globalAgent: used by http.get/https.get and every library that passes no agent.
  function proxyingAgent(Agent, wrapTls) {
    const agent = new Agent({ keepAlive: true });
    const original = agent.createConnection.bind(agent);
    agent.createConnection = (options, callback) => {
      const port = options.port || (wrapTls ? 443 : 80);
      if (direct(options.host, port)) return original(options, callback);
      tunnel(options.host, port, (error, socket) => {
        if (error) return callback(error);
        if (!wrapTls) return callback(null, socket);
        secure(socket, { ...options, servername: serverName(options.host, options.servername) }, callback);
      });
      return undefined; // the socket comes through the callback
    };
    return agent;
  }

  // Node 22 says once per process that the EnvHttpProxyAgent NODE_USE_ENV_PROXY turns on is
  // experimental: `firewall run` set that, not the agent, so the warning (queued before this
  // preload runs) is not printed. Every other warning goes to Node's own handlers unchanged.
  try {
    for (const listener of process.listeners("warning")) {
      process.removeListener("warning", listener);
      process.on("warning", function (warning) {
        if (warning && warning.code === "UNDICI-EHPA") return undefined;
        return listener.call(this, warning);
      });
    }
  } catch {
    // leave the warning
  }

  const proxiedByNode = (agent) => Boolean(agent && agent.options && agent.options.proxyEnv);
  try {
    if (!proxiedByNode(http.globalAgent)) http.globalAgent = proxyingAgent(http.Agent, false);
    if (!proxiedByNode(https.globalAgent)) https.globalAgent = proxyingAgent(https.Agent, true);
  } catch {
    // leave http and https as they are
  }

  // fetch: Node's undici reads its dispatcher from this global symbol; calling fetch once on a data:
  // URL makes it create its default Agent, whose class builds ours.
  try {
    if (typeof globalThis.fetch !== "function") return;
    const symbol = Symbol.for("undici.globalDispatcher.1");
    globalThis.fetch("data:,").catch(() => {});
    const current = globalThis[symbol];
    if (!current || typeof current.constructor !== "function") return;
    if (current.constructor.name === "EnvHttpProxyAgent") return; // Node proxies fetch itself
    const UndiciAgent = current.constructor;
    const dispatcher = new UndiciAgent({
      connect(options, callback) {
        const secureTarget = options.protocol === "https:";
        const port = Number(options.port || (secureTarget ? 443 : 80));
        const tlsOptions = {
          servername: serverName(options.hostname, options.servername),
          ALPNProtocols: ["http/1.1"],
        };
        if (direct(options.hostname, port)) {
          const socket = secureTarget
            ? tls.connect({ ...tlsOptions, host: options.hostname, port })
            : net.connect({ host: options.hostname, port });
          const answer = once(callback);
          socket.once(secureTarget ? "secureConnect" : "connect", () => answer(null, socket));
          socket.once("error", (error) => answer(error));
          return;
        }
        tunnel(options.hostname, port, (error, socket) => {
          if (error) return callback(error);
          if (!secureTarget) return callback(null, socket);
          secure(socket, tlsOptions, callback);
        });
      },
    });
    globalThis[symbol] = dispatcher;
  } catch {
    // leave fetch as Node made it
  }
})();
