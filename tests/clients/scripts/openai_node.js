// openai-node's default client (the global fetch, nothing set up for a proxy: the run's preload
// does that) lists the models.   node openai_node.js OPENAI_PACKAGE_DIR BASE_URL
"use strict";
const [packageDir, baseURL] = process.argv.slice(2);
const OpenAI = require(packageDir);

const client = new OpenAI({ baseURL: `${baseURL}/v1`, maxRetries: 0, timeout: 20000 });
client.models.list().then(
  (page) => console.log(page.data.map((model) => model.id).join(" ")),
  (error) => {
    console.error(String(error.cause || error));
    process.exit(1);
  },
);
