"""Send N quick GETs to URL through the environment's proxy; print {"codes": [...], "seconds": S}.

python burst.py URL N
"""

import json
import sys
import time

import httpx

url, count = sys.argv[1], int(sys.argv[2])
with httpx.Client(timeout=10) as client:  # HTTPS_PROXY and SSL_CERT_FILE from `firewall run`
    started = time.monotonic()
    codes = [client.get(url).status_code for _ in range(count)]
    print(json.dumps({"codes": codes, "seconds": time.monotonic() - started}))
