// axios's default instance GETs URL and prints the answer, with nothing set up for a proxy: axios
// reads HTTPS_PROXY itself (proxy-from-env) and sends the request to the proxy in absolute form.
//   node axios_client.js AXIOS_PACKAGE_DIR URL
"use strict";
const path = require("path");
const { createRequire } = require("module");
const [packageDir, url] = process.argv.slice(2);
// Resolved as `require("axios")` would be from the folder it is installed in (its CommonJS build).
const axios = createRequire(path.join(packageDir, "..", "..", "package.json"))("axios");

axios.get(url, { timeout: 20000, responseType: "text" }).then(
  (response) => console.log(`${response.status} ${response.data}`),
  (error) => {
    console.error(String(error.cause || error));
    process.exit(1);
  },
);
