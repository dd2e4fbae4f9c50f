#!/bin/sh
# A shell agent: curl honours https_proxy and CURL_CA_BUNDLE, both set by `firewall run`.
curl -sS -w '\nstatus %{http_code}\n' -H "Authorization: Bearer ${OPENAI_API_KEY:-unset}" https://api.openai.com/v1/models
curl -sS -w '\nstatus %{http_code}\n' https://example.com/   # no host block: refused with a JSON reason
